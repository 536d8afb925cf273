"""Losses on the student's time features: a time-aligned hint and 1-D attention transfer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from distill.config.schema import AttentionTransferConfig, HintConfig
from distill.core.losses.base import LossInputs, require, resample_distribution, resample_time
from distill.core.losses.registry import LossContext, register_loss
from distill.errors import BadValueError


class TimeAlignedHint(nn.Module):
    """FitNet-style hint: project c' (B, T', C) to the teacher width and match the teacher's last
    hidden states interpolated to T' (MSE, or 1 - cosine similarity per time step)."""

    def __init__(self, channels: int, teacher_dim: int, distance: str = "mse") -> None:
        super().__init__()
        if distance not in ("mse", "cosine"):
            raise BadValueError(f"hint distance must be mse or cosine, given {distance!r}")
        self.proj = nn.Linear(channels, teacher_dim)
        self.distance = distance

    def forward(self, inputs: LossInputs) -> Tensor:
        feats = require(inputs.time_features, "tapped time features", "hint")
        hidden = require(inputs.teacher_hidden, "the teacher's hidden states", "hint").detach()
        pred = self.proj(feats)
        target = resample_time(hidden.float(), pred.shape[1])
        if self.distance == "mse":
            return F.mse_loss(pred, target)
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()


class TemporalAttentionTransfer(nn.Module):
    """Attention transfer (Zagoruyko & Komodakis) made 1-D: the student's activation energy over
    time, mean_c |c'|^p, L2-normalised, against the teacher's temporal attention on T' steps,
    L2-normalised; the loss is the mean L2 distance. No parameters."""

    def __init__(self, p: float = 2.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, inputs: LossInputs) -> Tensor:
        feats = require(inputs.time_features, "tapped time features", "attention_transfer")
        teacher = require(
            inputs.teacher_attention, "the teacher's temporal attention", "attention_transfer"
        )
        energy = feats.abs().pow(self.p).mean(dim=-1)
        target = resample_distribution(teacher.detach().float(), energy.shape[1])
        return (F.normalize(energy, dim=1) - F.normalize(target, dim=1)).norm(dim=1).mean()


@register_loss(
    "hint",
    config=HintConfig,
    needs_teacher=True,
    needs_features=True,
    needs_hidden=True,
    arm_tokens={"hint": {}},
    default_weight=0.1,
    order=30,
)
def build_hint(cfg: HintConfig, context: LossContext) -> TimeAlignedHint:
    """losses.hint: needs the teacher's hidden width to build its projection."""
    if context.teacher_dim is None:
        raise BadValueError("losses.hint needs a teacher that returns hidden states")
    return TimeAlignedHint(context.channels, context.teacher_dim, cfg.distance)


@register_loss(
    "attention_transfer",
    config=AttentionTransferConfig,
    needs_teacher=True,
    needs_features=True,
    arm_tokens={"at": {}},
    default_weight=0.5,
    order=40,
)
def build_attention_transfer(
    cfg: AttentionTransferConfig, context: LossContext
) -> TemporalAttentionTransfer:
    """losses.attention_transfer: 1-D attention transfer, no parameters."""
    return TemporalAttentionTransfer(cfg.p)
