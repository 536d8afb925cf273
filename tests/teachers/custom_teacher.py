"""Test-local teachers plugged in without touching the package: `FrameTeacher` is used by
dotted path (no registration), `RegisteredFrameTeacher` registers the kind `test_frames`."""

from __future__ import annotations

from pathlib import Path

import torch
from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.registry import register_teacher
from distill.teachers.saved import read_teacher, save_teacher
from torch import nn

KIND = "tests.teachers.custom_teacher.FrameTeacher"  # saved as its dotted path


class FrameTeacher(Teacher):
    """Waveform frames of `frame` samples -> one self-attention layer -> mean-pooled logits;
    the rolled-out attention is over the frames."""

    default_query = "mean"

    def __init__(
        self,
        class_names: list[str],
        frame: int = 1600,
        width: int = 8,
        head_fusion: str = "mean",
        layers: list[int] | None = None,
        query: str | None = None,
        residual: float = 0.5,
    ) -> None:
        super().__init__(head_fusion, layers, query, residual)
        self.names = list(class_names)
        self.frame, self.width = int(frame), int(width)
        self.embed = nn.Linear(self.frame, self.width)
        self.attn = nn.MultiheadAttention(self.width, 2, batch_first=True)
        self.head = nn.Linear(self.width, len(self.names))

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def class_names(self) -> list[str]:
        return list(self.names)

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        self.check_waveform(waveform)
        b, n = waveform.shape
        t = n // self.frame
        x = self.embed(waveform[:, : t * self.frame].reshape(b, t, self.frame))
        h, weights = self.attn(x, x, x, need_weights=True, average_attn_weights=False)
        starts = torch.arange(t, dtype=torch.float32) * self.frame / self.sample_rate
        spans = torch.stack([starts, starts + self.frame / self.sample_rate], dim=-1)
        return TeacherOutput(self.head(h.mean(1)), self.rollout_row([weights]), spans, h)

    def save_pretrained(self, directory: str | Path) -> None:
        config = {"class_names": self.names, "frame": self.frame, "width": self.width}
        save_teacher(self, directory, KIND, {**config, **self.rollout_options()})

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FrameTeacher:
        config, state, _ = read_teacher(directory, KIND, "frame teacher")
        teacher = cls(**config)
        teacher.load_state_dict(state)
        return teacher

    @classmethod
    def build(cls, class_names: list[str], **options) -> FrameTeacher:
        return cls(class_names, **options)


@register_teacher("test_frames", from_scratch=False)
class RegisteredFrameTeacher(FrameTeacher):
    """The same teacher registered as `test_frames`, declared not trainable from scratch."""
