"""Find, load, override and validate recipes against the typed schema."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill.config.schema import RecipeConfig
from distill.errors import DistillError

# Values that string keys may take; checked after overrides, before any work starts.
CHOICES: dict[str, tuple[str, ...]] = {
    "frontend.kind": ("logmel", "mfcc"),
    "frontend.normalize": ("utterance", "none"),
    "data.name": (
        "synth_kws",
        "speech_commands",
        "noisy_speech_commands",
        "fsd50k",
        "synth_events",
        "folder",
    ),
    "data.task": ("single_label", "multi_label"),
    "data.crop": ("center", "start", "random"),
    "teacher.kind": ("none", "inhouse", "hf", "timm"),
    "teacher.head_fusion": ("mean", "max", "min"),
    "losses.weighting": ("additive", "convex"),
    "losses.temporal_kd.target": ("teacher", "span", "shuffled", "uniform"),
    "losses.temporal_kd.direction": ("forward", "reverse"),
    "qat.fake_quant": ("deployment", "all"),
    "losses.hint.distance": ("mse", "cosine"),
    "optim.name": ("adamw", "sgd"),
    "optim.schedule": ("cosine", "constant"),
    "logger.wandb_mode": ("auto", "offline", "online"),
    "export.format": ("onnx",),
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


def recipe_description(path: Path) -> str:
    """The recipe's one-line `description`."""
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    return str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""


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
        value = yaml.safe_load(text) if text != "" else ""
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


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> DictConfig:
    """Load a recipe, apply dotted overrides, validate it and resolve interpolations.

    Raises RecipeError naming the key, the given value and what is allowed.
    """
    path = find_recipe(name_or_path)
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from None
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
    _check_choices(cfg)
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
    _check_choices(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The fully resolved recipe as YAML text."""
    return OmegaConf.to_yaml(cfg, resolve=True)
