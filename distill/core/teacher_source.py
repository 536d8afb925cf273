"""Where a module's teacher outputs come from: the recipe's frozen teacher run online, or a cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from distill.errors import BadValueError, MissingFileError


def load_teacher_for(cfg: DictConfig) -> Any:
    """The recipe's frozen teacher, or None for teacher.kind=none."""
    if cfg.teacher.kind == "none":
        return None
    from distill import teachers

    if not cfg.teacher.path:
        raise BadValueError(
            f"teacher.kind={cfg.teacher.kind} needs teacher.path (a saved teacher directory; "
            "train one with `distill teach RECIPE`)"
        )
    path = Path(cfg.teacher.path)
    if cfg.teacher.kind in ("inhouse", "timm") and not path.is_dir():
        raise MissingFileError(
            f"teacher.path {path} does not exist: train the teacher first with "
            f"`distill teach RECIPE` or point teacher.path at a saved teacher"
        )
    options = OmegaConf.to_container(cfg.teacher.kwargs, resolve=True) if cfg.teacher.kwargs else {}
    if cfg.teacher.kind == "hf":
        teacher = teachers.create("hf", path=str(path), **options)
    else:
        teacher = teachers.load_teacher(path)
    teacher.head_fusion = cfg.teacher.head_fusion
    teacher.layers = list(cfg.teacher.rollout_layers) if cfg.teacher.rollout_layers else None
    return teacher.freeze()


def check_class_names(teacher_names: list[str], data_names: list[str], where: Any) -> None:
    """Refuse a teacher trained on another class list (order matters for logit KD)."""
    if list(teacher_names) != list(data_names):
        raise BadValueError(
            f"teacher {where} was trained on classes {list(teacher_names)} but the data has "
            f"{list(data_names)}: logit KD needs the same classes in the same order"
        )
