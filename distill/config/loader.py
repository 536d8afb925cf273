"""Find, load, override and validate recipes against the typed schema."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill.config.ranges import is_integer, range_of, section_type
from distill.config.schema import RecipeConfig, TrainerConfig
from distill.errors import DistillError

# Values that string keys may take; checked after overrides, before any work starts.
# data.name and teacher.kind are checked by their registries (distill.data.registry,
# distill.teachers.registry) when the data module / teacher is built: they take registered
# names and dotted paths of custom classes.
CHOICES: dict[str, tuple[str, ...]] = {
    "frontend.kind": ("logmel", "mfcc"),
    "frontend.normalize": ("utterance", "frame", "running", "none"),
    "data.task": ("single_label", "multi_label"),
    "data.crop": ("center", "start", "random"),
    "teacher.head_fusion": ("mean", "max", "min"),
    "losses.weighting": ("additive", "convex"),
    "losses.temporal_kd.target": ("teacher", "span", "shuffled", "uniform"),
    "losses.temporal_kd.direction": ("forward", "reverse"),
    "losses.timed.target": ("maxpool", "teacher", "span", "shuffled", "frame_logit"),
    "qat.fake_quant": ("deployment", "all", "litert"),
    "losses.hint.distance": ("mse", "cosine"),
    "optim.name": ("adamw", "sgd"),
    "optim.schedule": ("cosine", "constant"),
    "logger.wandb_mode": ("auto", "offline", "online"),
    "export.format": ("onnx", "tflite"),
}


# Arguments of the Lightning Trainer that distill sets itself, and where a recipe sets them
# instead; `trainer.kwargs` may not hold them (nor any argument with a field of the same name
# in the recipe's `trainer` section).
TRAINER_ARGS_SET_BY_DISTILL: dict[str, str] = {
    "enable_progress_bar": "set it with trainer.progress_bar",
    "callbacks": "list them under trainer.callbacks",
    "logger": "choose loggers in the logger section (logger.csv, logger.tensorboard, logger.wandb)",
    "plugins": "distill sets it (checkpoints are written atomically)",
    "default_root_dir": "distill sets it to the run directory (run_dir, --run-dir)",
    "use_distributed_sampler": "distill sets it (the datamodule shards the data by rank itself)",
    "enable_checkpointing": "distill sets it (best.ckpt and last.ckpt)",
}


class RecipeError(DistillError, ValueError):
    """A recipe, or an override of it, does not fit the schema."""


def recipe_dirs() -> list[Path]:
    """Folders searched for recipes by name: ./recipes first, then the installed recipes."""
    dirs = [Path.cwd() / "recipes"]
    from distill import recipes

    packaged = Path(recipes.__file__).parent
    if packaged.resolve() != dirs[0].resolve():
        dirs.append(packaged)
    return [d for d in dirs if d.is_dir()]


def available_recipes() -> dict[str, Path]:
    """Recipe name -> file, the first folder in `recipe_dirs()` winning."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_recipe(name_or_path: str) -> Path:
    """Resolve a recipe given by file path or by name."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.is_dir():
            raise RecipeError(f"recipe {path} is a folder; give a .yaml file or a recipe name")
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return path
    known = available_recipes()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RecipeError(
        f"no recipe named '{name_or_path}'{hint} (known: {', '.join(sorted(known)) or 'none'}; "
        "or give a path to a .yaml file)"
    )


def read_yaml(path: Path) -> Any:
    """The YAML content of a recipe file; RecipeError naming it when it is not YAML text."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        where = f"{err.reason} at byte {err.start}"
        raise RecipeError(f"recipe {path} is not UTF-8 text ({where})") from None


def recipe_description(path: Path) -> str:
    """The recipe's one-line `description`."""
    raw = read_yaml(path)
    text = str(raw.get("description") or "").strip() if isinstance(raw, dict) else ""
    return text.splitlines()[0] if text else ""


def _describe_type(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_keys(given: Any, schema: type, where: str, source: str) -> None:
    """Refuse keys the schema does not have, naming the full key path and the valid keys."""
    if not isinstance(given, dict):
        return
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in given.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean '{(where + '.') if where else ''}{close[0]}'?" if close else ""
            raise RecipeError(
                f"{source}: unknown key '{path}' (given: {value!r}). "
                f"Valid keys under '{where or '<root>'}': {', '.join(fields)}.{hint}"
            )
        sub = hints[key]
        if dataclasses.is_dataclass(sub):
            if value is not None and not isinstance(value, dict):
                raise RecipeError(
                    f"{source}: key '{path}' must be a mapping of {_describe_type(sub)} "
                    f"(keys: {', '.join(f.name for f in dataclasses.fields(sub))}), "
                    f"given {value!r}"
                )
            _check_keys(value, sub, path, source)


def _parse_overrides(overrides: list[str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise RecipeError(
                f"override '{item}' is not of the form dotted.key=value (e.g. trainer.max_epochs=3)"
            )
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as err:
            problem = " ".join(str(getattr(err, "problem", None) or err).split())
            raise RecipeError(f"override '{item}': value is not valid YAML ({problem})") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override '{item}' sets a key inside a non-mapping value")
        node[parts[-1]] = value
    return nested


def _merge(base: DictConfig, update: dict[str, Any], source: str) -> DictConfig:
    _check_keys(update, RecipeConfig, "", source)
    try:
        return OmegaConf.merge(base, OmegaConf.create(update))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise RecipeError(_explain(err, source)) from None


def _explain(err: OmegaConfBaseException, source: str) -> str:
    key = getattr(err, "full_key", None) or "?"
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    expected = ""
    if "could not be converted to" in msg:
        expected = msg.split("could not be converted to", 1)[1].strip()
        given = getattr(err, "value", None)
        if given is None and "Value '" in msg:
            given = msg.split("Value '", 1)[1].split("'", 1)[0]
        return f"{source}: key '{key}' expects {expected}, given {given!r}"
    return f"{source}: key '{key}': {msg}"


def _check_choices(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise RecipeError(f"key '{key}' must be one of {', '.join(allowed)}, given {value!r}")


def check_ranges(cfg: DictConfig | dict, schema: type = RecipeConfig, where: str = "") -> None:
    """Refuse a numeric value outside the range its schema field declares (distill.config.ranges):
    one line naming the key, the value given and the range (NaN and infinities always refused)."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        section, allowed = section_type(hints[f.name]), range_of(f)
        if f.name not in cfg or (section is None and allowed is None):
            continue  # (a required key without a value, e.g. data.root, is never read here)
        key = f"{where}{f.name}"
        value = cfg[f.name]
        if value is None:
            continue
        if section is not None:
            if typing.get_origin(hints[f.name]) is dict:
                for name, item in value.items():
                    check_ranges(item, section, f"{key}.{name}.")
            else:
                check_ranges(value, section, f"{key}.")
            continue
        plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        if not allowed.accepts(plain):
            raise RecipeError(
                f"key '{key}' must be {allowed.describe(is_integer(hints[f.name]))}, "
                f"given {plain!r}"
            )


def check_trainer_kwargs(cfg: DictConfig) -> None:
    """Refuse a key of `trainer.kwargs` that the recipe sets elsewhere (a typed `trainer` field or
    an argument distill owns) or that the Lightning Trainer does not take, naming the key."""
    given = OmegaConf.select(cfg, "trainer.kwargs")
    if not given:
        return
    typed = {f.name for f in dataclasses.fields(TrainerConfig)}
    import pytorch_lightning as pl

    known = [n for n in inspect.signature(pl.Trainer.__init__).parameters if n != "self"]
    for key in given:
        where = f"key 'trainer.kwargs.{key}'"
        if key in TRAINER_ARGS_SET_BY_DISTILL:
            raise RecipeError(f"{where}: {TRAINER_ARGS_SET_BY_DISTILL[key]}, not in trainer.kwargs")
        if key in typed:
            raise RecipeError(f"{where}: set it with the typed key trainer.{key} instead")
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"{where} is not an argument of the Lightning Trainer{hint}")


def check_recipe(cfg: DictConfig) -> None:
    """Check a recipe's values against the schema's choices and ranges, and `trainer.kwargs`
    against the Lightning Trainer (RecipeError naming the first key that does not fit);
    `load_recipe` and `apply_overrides` do this before any work."""
    _check_choices(cfg)
    check_ranges(cfg)
    check_trainer_kwargs(cfg)


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> DictConfig:
    """Load a recipe, apply dotted overrides, validate it and resolve interpolations.

    Raises RecipeError naming the key, the given value and what is allowed.
    """
    path = find_recipe(name_or_path)
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path} must be a mapping at the top level, got {type(raw)}")
    cfg = OmegaConf.structured(RecipeConfig)
    cfg = _merge(cfg, raw, f"recipe {path}")
    if overrides:
        cfg = _merge(cfg, _parse_overrides(overrides), "override")
    try:
        OmegaConf.resolve(cfg)
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as err:
        raise RecipeError(_explain(err, f"recipe {path}")) from None
    if missing:
        raise RecipeError(
            f"recipe {path}: required key(s) without a value: {', '.join(missing)} "
            f"(set them in the recipe or override, e.g. {missing[0]}=...)"
        )
    check_recipe(cfg)
    OmegaConf.set_readonly(cfg, False)
    return cfg


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A loaded recipe with dotted overrides applied and validated again.

    The recipe is typed by the schema first, so that an override of a recipe read back from a
    checkpoint or a run's config.yaml (untyped there) is converted and checked like any other:
    `qat.lr=1e-5` is the float 1e-5, not the text."""
    if OmegaConf.get_type(cfg) is not RecipeConfig:
        cfg = _merge(OmegaConf.structured(RecipeConfig), OmegaConf.to_container(cfg), "recipe")
    cfg = _merge(cfg, _parse_overrides(overrides), "override")
    OmegaConf.resolve(cfg)
    check_recipe(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The fully resolved recipe as YAML text."""
    return OmegaConf.to_yaml(cfg, resolve=True)
