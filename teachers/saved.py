"""The on-disk form of this project's own teachers: `config.json` + `model.safetensors`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from distill.errors import BadValueError, MissingFileError
from distill.files import atomic_path, write_text

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_teacher(module: nn.Module, directory: str | Path, kind: str, config: dict) -> None:
    """Write `{"teacher_kind": kind, "config": config}` and the module's weights."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:  # disk full: no partial file left
        save_file(state, str(tmp))
    write_text(
        directory / CONFIG_FILE, json.dumps({"teacher_kind": kind, "config": config}, indent=2)
    )


def read_teacher(
    directory: str | Path, kind: str, label: str
) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(config, weights, config path) of a teacher saved by `save_teacher`, checking its kind."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise MissingFileError(f"{label}: {p} is missing (not a saved teacher?)")
    try:
        meta = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise BadValueError(f"{label}: {cfg_path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("teacher_kind") != kind:
        found = meta.get("teacher_kind") if isinstance(meta, dict) else meta
        raise BadValueError(f"{cfg_path}: teacher_kind is {found!r}, expected {kind!r}")
    if "config" not in meta:
        raise BadValueError(f"{label}: {cfg_path} has no 'config' entry (not a saved teacher?)")
    try:
        weights = load_file(str(w_path))
    except Exception as err:  # safetensors raises SafetensorError / OSError on a damaged file
        raise BadValueError(
            f"{label}: {w_path} is not a readable safetensors file ({err})"
        ) from err
    return meta["config"], weights, cfg_path
