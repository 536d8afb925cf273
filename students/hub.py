"""Students saved and loaded like hub models: a folder with `model.safetensors` (the weights, with
the student's config as JSON in the safetensors header, the format of a run's
`student.safetensors`), `config.json` (the same config, for people and hub tools) and a model
card `README.md`. Loading never unpickles: pickled weights are refused, and a hub id is read
from the local Hugging Face cache only (nothing is downloaded at run time).

Why not huggingface_hub's `PyTorchModelHubMixin`: it rebuilds a model from its class's init
arguments, while a student here is a registered name (or dotted path) plus `num_classes`,
`n_features` and kwargs; it downloads when the files are not cached; and it falls back to a
pickled `pytorch_model.bin`. The folder layout is the same, so hub tools read ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from distill.students import registry
from torch import nn

from distill._version import __version__
from distill.errors import BadValueError, MissingFileError, UnsafeArtifactError
from distill.files import atomic_path, write_json, write_text

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# the safetensors header of every student file (also pipeline/artifacts.py's student.safetensors)
STUDENT_FORMAT = "distill.student"
STUDENT_FORMAT_VERSION = "1"
STUDENT_KEYS = ("name", "num_classes", "n_features", "kwargs")  # what `create` needs
INFO_KEYS = (*STUDENT_KEYS, "class_names", "frontend", "clip_seconds", "task")
PICKLED = ("pytorch_model.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.bin")


# -- the file format -----------------------------------------------------------------------------


def write_student_file(
    path: str | Path, state: Mapping[str, torch.Tensor], info: Mapping[str, Any]
) -> None:
    """Write weights plus `info` (JSON, in the header) as one safetensors file, atomically."""
    from safetensors.torch import save_file

    missing = [k for k in STUDENT_KEYS if k not in info]
    if missing:
        raise BadValueError(f"student config for {path} lacks {', '.join(missing)}")
    try:
        config = json.dumps(dict(info))
    except TypeError as err:
        raise BadValueError(f"student config for {path} is not plain JSON data: {err}") from None
    # own contiguous copies: safetensors refuses tensors that share memory
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    metadata = {"format": STUDENT_FORMAT, "format_version": STUDENT_FORMAT_VERSION}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**metadata, "config": config})


def read_student_header(path: str | Path, pickle_hint: str | None = None) -> dict[str, Any]:
    """The config in a student file's safetensors header; a pickle is refused, never read
    (UnsafeArtifactError, with `pickle_hint` on what to do instead)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as err:  # noqa: BLE001  safetensors parses the header only: no code runs
        if looks_pickled(path):
            hint = pickle_hint or (
                "students load from safetensors only; re-save a trusted one with "
                "students.save_pretrained"
            )
            raise UnsafeArtifactError(
                f"{path} holds pickled weights (a pickled student), which could run code when "
                f"loaded: refused; {hint}"
            ) from None
        raise BadValueError(f"{path} is not a safetensors file: {err}") from None
    if metadata.get("format") != STUDENT_FORMAT or "config" not in metadata:
        raise BadValueError(f"{path} is a safetensors file but not a student saved by distill")
    info = json.loads(metadata["config"])
    missing = [k for k in STUDENT_KEYS if k not in info]
    if missing:
        raise BadValueError(f"{path}: the student config lacks {', '.join(missing)}")
    return info


def looks_pickled(path: Path) -> bool:
    """Whether a file starts like torch.save output (zip) or a raw pickle."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


# -- saving --------------------------------------------------------------------------------------


def save_pretrained(
    model: nn.Module, directory: str | Path, *, card: str | None = None, **info: Any
) -> Path:
    """Write `model` to `directory` as model.safetensors + config.json + README.md.

    A model built by `students.create` (or loaded by `from_pretrained`) knows its name,
    num_classes, n_features and kwargs; for any other model give them as keywords (`name` a
    registered student or the dotted path of a class taking `(num_classes, n_features,
    **kwargs)`). Optional keywords: class_names, frontend (FrontendConfig fields), clip_seconds,
    task. `card` replaces the generated model card. The folder is checked to load back before
    this returns. Returns the directory."""
    unknown = sorted(set(info) - set(INFO_KEYS))
    if unknown:
        raise BadValueError(f"save_pretrained: unknown key(s) {unknown}; valid: {list(INFO_KEYS)}")
    config = {**(registry.created_with(model) or {}), **info}
    missing = [k for k in STUDENT_KEYS if k not in config and k != "kwargs"]
    if missing:
        raise BadValueError(
            f"save_pretrained: {type(model).__name__} was not built by students.create, so give "
            f"{', '.join(missing)} (the name is a registered student or a class's dotted path)"
        )
    config.setdefault("kwargs", {})
    if "<locals>" in config["name"]:
        raise BadValueError(
            f"save_pretrained: student {config['name']!r} is defined inside a function, so "
            "from_pretrained could not import it; define the class at module level"
        )
    state = model.state_dict()
    _rebuild(config, state, f"save_pretrained({type(model).__name__})")  # loads back, or fails
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_student_file(directory / WEIGHTS_FILE, state, config)
    write_json(directory / CONFIG_FILE, _hub_config(config))
    write_text(directory / CARD_FILE, card if card is not None else model_card(config))
    return directory


def _rebuild(info: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: Any) -> nn.Module:
    """The student `info` describes, built by `registry.create`, holding `state` (strict)."""
    model = registry.create(
        info["name"], num_classes=info["num_classes"], n_features=info["n_features"],
        **info["kwargs"],
    )  # fmt: skip
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise BadValueError(
            f"{where}: the weights do not fit student {info['name']!r}: {first}"
        ) from None
    return model


def _hub_config(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": STUDENT_FORMAT,
        "format_version": STUDENT_FORMAT_VERSION,
        "distill_version": __version__,
        **info,
    }


def model_card(
    info: Mapping[str, Any],
    facts: Mapping[str, Any] | None = None,
    scores: Mapping[str, float] | None = None,
) -> str:
    """A Hugging Face model card (README.md): what the student is, what it takes, and, for a
    student saved from a run, the run's `facts` (recipe, KD arm, teacher, ...) and test `scores`."""
    names = info.get("class_names")
    rows = {
        "student": f"`{info['name']}`" + (f" {json.dumps(info['kwargs'])}" * bool(info["kwargs"])),
        "classes": f"{info['num_classes']}" + (f": {', '.join(map(str, names))}" if names else ""),
        "input features": f"{info['n_features']} per frame",
    }
    if info.get("frontend"):
        rows["frontend"] = ", ".join(f"{k}={v}" for k, v in info["frontend"].items())
    if info.get("clip_seconds") is not None:
        rows["clip length"] = f"{info['clip_seconds']} s"
    if info.get("task"):
        rows["task"] = str(info["task"])
    rows.update({k: str(v) for k, v in (facts or {}).items()})
    lines = [
        "---",
        "library_name: temporal-distill",
        "pipeline_tag: audio-classification",
        "tags: [audio-classification, knowledge-distillation, temporal-distill]",
        "---",
        "",
        f"# {info['name']}",
        "",
        f"A compact audio classifier saved by temporal-distill {__version__}: features in "
        "(batch, features, frames), logits out; nothing extra at inference.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows.items()),
    ]
    if scores:
        lines += ["", "## Test scores", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in scores.items()]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from distill import students",
        "",
        'model = students.from_pretrained("<this folder or hub id>")',
        "```",
        "",
    ]
    return "\n".join(lines)


# -- loading -------------------------------------------------------------------------------------


def from_pretrained(
    path_or_id: str | Path, *, cache_dir: str | Path | None = None, revision: str | None = None
) -> nn.Module:
    """The student saved at `path_or_id`, in eval mode: a folder written by `save_pretrained`,
    a student .safetensors file (e.g. a run's student.safetensors), or a hub id already in the
    local Hugging Face cache (`cache_dir`, default HF_HUB_CACHE). Never downloads; never
    unpickles."""
    from safetensors.torch import load_file

    path = resolve(path_or_id, cache_dir=cache_dir, revision=revision)
    weights = path if path.is_file() else path / WEIGHTS_FILE
    info = read_student_header(weights)
    _check_config_json(path, info)
    model = _rebuild(info, load_file(str(weights)), weights)
    setattr(model, registry.CONFIG_ATTR, info)
    return model.eval()


def _check_config_json(path: Path, info: Mapping[str, Any]) -> None:
    """A folder's config.json must say what the weights' header says."""
    config_path = path / CONFIG_FILE
    if path.is_file() or not config_path.is_file():
        return
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise BadValueError(f"{config_path} is not JSON: {err}") from None
    differ = sorted(k for k in info if k in config and config[k] != info[k])
    if differ:
        raise BadValueError(
            f"{config_path} disagrees with {WEIGHTS_FILE} on {', '.join(differ)}: the weights' "
            "header is what loads; re-save the folder with students.save_pretrained"
        )


def resolve(
    path_or_id: str | Path, *, cache_dir: str | Path | None = None, revision: str | None = None
) -> Path:
    """The local folder or file of a saved student: `path_or_id` itself when it exists, else the
    cached snapshot of that hub id (read from the cache only)."""
    path = Path(path_or_id)
    if path.exists():
        if path.is_dir() and not (path / WEIGHTS_FILE).is_file():
            _refuse_or_missing(path)
        return path
    snapshot = _cached_snapshot(str(path_or_id), cache_dir, revision)
    if not (snapshot / WEIGHTS_FILE).is_file():
        _refuse_or_missing(snapshot, hub_id=str(path_or_id))
    return snapshot


def _cached_snapshot(repo_id: str, cache_dir: str | Path | None, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
        )
    except (HFValidationError, LocalEntryNotFoundError, OSError) as err:
        where = cache_dir or "the local Hugging Face cache (HF_HUB_CACHE)"
        raise MissingFileError(
            f"student {repo_id!r} is neither a local folder or file nor a hub id in {where}: "
            f"download it first (`hf download {repo_id}`); distill never downloads at run time "
            f"({type(err).__name__})"
        ) from None
    return Path(folder)


def _refuse_or_missing(folder: Path, hub_id: str | None = None) -> None:
    what = f"hub id {hub_id!r} ({folder})" if hub_id else str(folder)
    pickled = sorted({p.name for pattern in PICKLED for p in folder.glob(pattern)})
    if pickled:
        raise UnsafeArtifactError(
            f"{what} holds pickled weights ({', '.join(pickled)}) but no {WEIGHTS_FILE}: "
            "refused, pickles can run code when loaded (students load from safetensors only)"
        )
    raise MissingFileError(f"{what} holds no {WEIGHTS_FILE}: not a saved student")


def create(
    name: str | registry.StudentFactory,
    num_classes: int | None = None,
    n_features: int | None = None,
    *,
    pretrained: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build student `name` (see `registry.create`), or with `pretrained` (a folder, file or
    cached hub id) load the saved one, checking that it is that student and that any given
    num_classes, n_features and kwargs match what was saved."""
    if pretrained is None:
        if num_classes is None:
            raise BadValueError("students.create needs num_classes (or pretrained=)")
        features = 40 if n_features is None else n_features
        return registry.create(name, num_classes, features, **kwargs)
    model = from_pretrained(pretrained)
    saved = registry.created_with(model)
    wanted = name if isinstance(name, str) else registry.dotted_name(name)
    given = {"num_classes": num_classes, "n_features": n_features, **kwargs}
    same_name = _canonical(wanted) == _canonical(saved["name"])
    differ = [
        f"{k}={v!r} (saved {_saved_value(saved, k)!r})"
        for k, v in given.items()
        if v is not None and v != _saved_value(saved, k)
    ]
    if not same_name or differ:
        what = [f"name {wanted!r} (saved {saved['name']!r})"] if not same_name else []
        raise BadValueError(
            f"pretrained student {pretrained} does not match: {', '.join(what + differ)}"
        )
    return model


def _saved_value(saved: Mapping[str, Any], key: str) -> Any:
    return saved[key] if key in ("num_classes", "n_features") else saved["kwargs"].get(key)


def _canonical(name: str) -> str:
    return registry.spec(name).name  # an alias's registered name; a dotted path as it is


__all__ = [
    "create",
    "from_pretrained",
    "model_card",
    "read_student_header",
    "resolve",
    "save_pretrained",
    "write_student_file",
]
