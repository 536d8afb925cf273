"""Where a run's files live (checkpoints, the bare student, QAT and export folders) and loading them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from distill.core.module import DistillModule
from distill.errors import MissingFileError
from distill.files import atomic_path

STUDENT_FILE = "student.pt"


def save_student(module: DistillModule, path: Path) -> None:
    """The plain student on its own: state dict plus what `students.create` needs."""
    cfg = module.cfg
    payload = {
        "name": cfg.student.target or cfg.student.name,
        "num_classes": len(module.class_names),
        "n_features": module.frontend.n_features,
        "kwargs": OmegaConf.to_container(cfg.student.kwargs, resolve=True),
        "class_names": module.class_names,
        "frontend": OmegaConf.to_container(cfg.frontend, resolve=True),
        "clip_seconds": module.clip_seconds,
        "state_dict": module.student_state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_student(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a saved student with `students.create` (no training code); returns (model, info)."""
    from distill import students

    payload = torch.load(path, map_location="cpu", weights_only=False)
    model = students.create(
        payload["name"],
        num_classes=payload["num_classes"],
        n_features=payload["n_features"],
        **payload["kwargs"],
    )
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


QAT_DIR = "qat"


EXPORT_DIR = "export"


QAT_STUDENT = "qat_student.pt"


def resolve(path: str | Path) -> tuple[Path, Path]:
    """(checkpoint, run directory) for a run directory or a .ckpt written by `distill fit`."""
    path = Path(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            raise MissingFileError(
                f"{path} holds no checkpoints/best.ckpt: give a run directory written by "
                "`distill fit` or a .ckpt file"
            )
        return ckpt, path
    if not path.is_file() or path.suffix != ".ckpt":
        raise MissingFileError(f"{path} is neither a run directory nor a .ckpt file")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, run_dir


def load_module(checkpoint: str | Path) -> Any:
    """The DistillModule of a checkpoint, on CPU, taps detached (student alone)."""
    from distill.core.module import DistillModule

    module = DistillModule.load_from_checkpoint(
        str(checkpoint), map_location="cpu", weights_only=False
    )
    module.detach_taps()
    return module.eval()


def frames_of(module: Any) -> int:
    """Feature frames of one clip of the recipe's length."""
    cfg = module.cfg
    return module.frontend.num_frames(int(round(cfg.data.clip_seconds * cfg.data.sample_rate)))


def load_qat_student(run_dir: Path) -> tuple[nn.Module, dict] | None:
    """The QAT-fine-tuned float student of a run, or None when `distill qat` has not run."""
    from distill.pipeline.artifacts import load_student

    path = run_dir / QAT_DIR / QAT_STUDENT
    return load_student(path) if path.is_file() else None
