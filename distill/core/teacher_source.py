"""Where a module's teacher outputs come from: the `TeacherSource` protocol, the recipe's frozen
teacher run online (`OnlineTeacher`), and loading that teacher. The teacher cache
(`distill.caches.teacher_cache.TeacherCache`, a layer above) implements the same protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from distill.errors import BadValueError, MissingFileError, UsageError
from distill.teachers.base import TeacherOutput

NO_TEACHER = "none"  # teacher.kind of a recipe without a teacher


@runtime_checkable
class TeacherSource(Protocol):
    """Gives the teacher outputs of a batch's clips, whatever computes or stores them."""

    def outputs(
        self, batch: dict[str, Any], split: str, device: torch.device | str
    ) -> TeacherOutput:
        """Logits (B, K), attention (B, T_t) and hidden states (or None) of the batch's clips,
        in batch order, on `device`."""
        ...


class OnlineTeacher(nn.Module):
    """The frozen teacher run on every batch's waveforms (`teacher.cache=false`)."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        return self.teacher(waveform)

    def outputs(
        self, batch: dict[str, Any], split: str, device: torch.device | str
    ) -> TeacherOutput:
        """The teacher's outputs for the batch's waveforms (on the teacher's device)."""
        if "waveform" not in batch:
            raise UsageError(
                "the online teacher (teacher.cache=false) needs waveforms, but the batches hold "
                "cached features (data.cache_features=true): use the teacher cache or turn the "
                "feature cache off"
            )
        with torch.no_grad():
            return self.teacher(batch["waveform"])


def load_teacher_for(cfg: DictConfig) -> Any:
    """The recipe's frozen teacher, or None for teacher.kind=none."""
    if cfg.teacher.kind == NO_TEACHER:
        return None
    from distill import teachers

    spec = teachers.spec(cfg.teacher.kind)
    if not cfg.teacher.path:
        raise BadValueError(
            f"teacher.kind={cfg.teacher.kind} needs teacher.path ({spec.where}; train one with "
            "`distill teach RECIPE`)"
        )
    path = Path(cfg.teacher.path)
    if not spec.hf_format and not path.is_dir():
        raise MissingFileError(
            f"teacher.path {path} does not exist: train the teacher first with "
            f"`distill teach RECIPE` or point teacher.path at a saved teacher"
        )
    options = {}
    if spec.hf_format and cfg.teacher.kwargs:  # load options; otherwise training options
        options = OmegaConf.to_container(cfg.teacher.kwargs, resolve=True)
    teacher = teachers.create(cfg.teacher.kind, path=str(path), **options)
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
