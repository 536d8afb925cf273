"""The teacher interface: waveform in, logits and temporal attention (by rollout) out."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from distill.teachers.rollout import HEAD_FUSIONS, QUERIES, attention_rollout, query_row
from torch import nn

from distill.errors import BadValueError, UsageError


@dataclass
class TeacherOutput:
    """What a teacher gives the distillation losses for one batch.

    logits: (B, K). attention: (B, T_t), a distribution over time positions (rows sum to 1).
    spans: (T_t, 2), start and end seconds of each time position (None for outputs read back
    from a teacher cache, which keeps no spans). hidden: (B, T_t, D) last hidden states at the
    same time positions (mean over frequency patches), or None. frame_logits: (B, T_t, K) class
    logits per time position (the teacher's head on each position's hidden state), or None.
    """

    logits: torch.Tensor
    attention: torch.Tensor
    spans: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    frame_logits: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.logits.dim() != 2 or self.attention.dim() != 2:
            raise BadValueError(
                f"TeacherOutput needs logits (B, K) and attention (B, T_t), got "
                f"{tuple(self.logits.shape)} and {tuple(self.attention.shape)}"
            )
        if self.spans is not None and self.spans.shape != (self.attention.shape[1], 2):
            raise BadValueError(
                f"TeacherOutput spans must be ({self.attention.shape[1]}, 2), got "
                f"{tuple(self.spans.shape)}"
            )
        if self.hidden is not None and self.hidden.shape[:2] != self.attention.shape:
            raise BadValueError(
                f"TeacherOutput hidden must be (B, T_t, D) with (B, T_t) = "
                f"{tuple(self.attention.shape)}, got {tuple(self.hidden.shape)}"
            )
        expected = (*self.attention.shape, self.logits.shape[1])
        if self.frame_logits is not None and tuple(self.frame_logits.shape) != expected:
            raise BadValueError(
                f"TeacherOutput frame_logits must be (B, T_t, K) = {expected}, got "
                f"{tuple(self.frame_logits.shape)}"
            )


class Teacher(nn.Module, abc.ABC):
    """An attention teacher: `forward(waveform (B, N) at sample_rate) -> TeacherOutput`.

    Rollout options (head_fusion, layers, query, residual) are fixed at construction and may be
    changed later through the attributes of the same names.
    """

    #: query row used when the caller passes query=None (first frame or CLS token).
    default_query: str = "cls"

    def __init__(
        self,
        head_fusion: str = "mean",
        layers: Sequence[int] | None = None,
        query: str | None = None,
        residual: float = 0.5,
    ) -> None:
        super().__init__()
        query = self.default_query if query is None else query
        if head_fusion not in HEAD_FUSIONS:
            raise BadValueError(
                f"teacher head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}"
            )
        if query not in QUERIES:
            raise BadValueError(f"teacher rollout query must be one of {QUERIES}, got {query!r}")
        self.head_fusion = head_fusion
        self.layers = None if layers is None else list(layers)
        self.query = query
        self.residual = float(residual)

    # -- what every teacher declares ---------------------------------------------------------
    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) the waveform must have."""

    @property
    @abc.abstractmethod
    def class_names(self) -> list[str]:
        """Names of the K output classes, in logit order."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abc.abstractmethod
    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        """Logits, temporal attention and hidden states for a (B, N) waveform batch."""

    def classify(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) only; teachers with a faster path without attention weights override."""
        return self.forward(waveform).logits

    @abc.abstractmethod
    def save_pretrained(self, directory: str) -> None:
        """Write the teacher so that `teachers.load_teacher(directory)` rebuilds it."""

    # -- how the pipeline makes one (see distill.teachers.registry) --------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, **options: Any) -> Teacher:
        """The teacher saved at `path` (Hugging Face-format kinds also take load options)."""
        raise UsageError(f"{cls.__name__} defines no from_pretrained: it cannot be loaded")

    @classmethod
    def build(cls, class_names: list[str], **options: Any) -> Teacher:
        """A new, untrained teacher for `class_names` (the recipe's teacher.kwargs as options)."""
        raise UsageError(
            f"{cls.__name__} cannot be trained from scratch: give teacher.kwargs.init_from"
        )

    @classmethod
    def start_from(cls, source: str | Path, class_names: list[str], **options: Any) -> Teacher:
        """A trainable teacher initialised from the saved teacher at `source` (`distill teach`
        with teacher.kwargs.init_from); the saved teacher must have the data's classes."""
        if options:
            raise BadValueError(
                f"teacher.kwargs {sorted(options)} do not apply when starting from the saved "
                f"teacher {source} (teacher.kwargs.init_from): it keeps its own settings"
            )
        teacher = cls.from_pretrained(source)
        if teacher.class_names != list(class_names):
            raise BadValueError(
                f"teacher.kwargs.init_from {source} has classes {teacher.class_names}, the data "
                f"has {list(class_names)}"
            )
        for p in teacher.parameters():
            p.requires_grad_(True)
        return teacher.train()

    # -- shared helpers ----------------------------------------------------------------------
    def freeze(self) -> Teacher:
        """Eval mode and no gradients for any parameter; returns self."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def rollout_options(self) -> dict:
        return {
            "head_fusion": self.head_fusion,
            "layers": self.layers,
            "query": self.query,
            "residual": self.residual,
        }

    def rollout_row(self, attentions: Sequence[torch.Tensor], cls_index: int = 0) -> torch.Tensor:
        """Rollout of per-layer attentions reduced to the configured query row (B, N)."""
        r = attention_rollout(
            attentions, head_fusion=self.head_fusion, residual=self.residual, layers=self.layers
        )
        return query_row(r, self.query, cls_index=cls_index)

    def check_waveform(self, waveform: torch.Tensor) -> None:
        """Raise unless the input is a floating (B, N) batch."""
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 2:
            shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else waveform
            raise BadValueError(
                f"{type(self).__name__} expects a (batch, samples) waveform tensor at "
                f"{self.sample_rate} Hz, got {shape}"
            )
        if not waveform.is_floating_point():
            raise BadValueError(
                f"{type(self).__name__} expects a floating waveform, got dtype {waveform.dtype}"
            )
