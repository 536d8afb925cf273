"""A custom loss term, plugged in the tests by the recipe override
`losses.custom.<name>.target=tests.core.custom_loss.TemporalCentroid`: nothing else names it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.core.losses.base import LossInputs, require
from distill.core.losses.registry import LossContext


class TemporalCentroid(nn.Module):
    """scale * (centroid of a learned attention over c' - centroid of the teacher's attention)^2,
    centroids as expected positions in [0, 1] of the clip; a training-only query as parameter."""

    needs_teacher = True
    needs_features = True

    def __init__(self, channels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.query = nn.Linear(channels, 1)
        self.scale = scale

    @classmethod
    def from_context(cls, context: LossContext, scale: float = 1.0) -> TemporalCentroid:
        """Built with the tapped feature width, which only the framework knows."""
        return cls(context.channels, scale)

    def forward(self, inputs: LossInputs) -> Tensor:
        feats = require(inputs.time_features, "tapped time features", "temporal_centroid")
        teacher = require(inputs.teacher_attention, "teacher attention", "temporal_centroid")
        student = torch.softmax(self.query(feats).squeeze(-1), dim=-1)
        gap = centroid(student) - centroid(teacher.detach().float())
        return self.scale * gap.pow(2).mean()


def centroid(p: Tensor) -> Tensor:
    """Expected position in [0, 1] (bin centres) of distributions over the last axis, (B,)."""
    steps = p.shape[-1]
    positions = (torch.arange(steps, dtype=p.dtype, device=p.device) + 0.5) / steps
    return (p * positions).sum(-1) / p.sum(-1).clamp_min(1e-12)


def not_a_term(inputs: LossInputs) -> Tensor:
    """A function, not an nn.Module class: refused as a target."""
    return inputs.logits.sum()
