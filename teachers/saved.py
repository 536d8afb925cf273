"""The on-disk form of this project's own teachers: `config.json` + `model.safetensors`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from distill.errors import BadValueError, MissingFileError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_teacher(module: nn.Module, directory: str | Path, kind: str, config: dict) -> None:
    """Write `{"teacher_kind": kind, "config": config}` and the module's weights."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        json.dumps({"teacher_kind": kind, "config": config}, indent=2)
    )
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))


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
    meta = json.loads(cfg_path.read_text())
    if meta.get("teacher_kind") != kind:
        raise BadValueError(
            f"{cfg_path}: teacher_kind is {meta.get('teacher_kind')!r}, expected {kind!r}"
        )
    return meta["config"], load_file(str(w_path)), cfg_path
