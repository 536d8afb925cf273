"""Loss terms with one signature (`forward(LossInputs) -> Tensor`), combined by recipe weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.core.losses.base import LossInputs, resample_distribution, resample_time, sharpen
from distill.core.losses.features import TemporalAttentionTransfer, TimeAlignedHint
from distill.core.losses.logits import LogitKD, TaskLoss
from distill.core.losses.temporal import (
    TemporalAttentionHead,
    TemporalAttentionKD,
    entropy,
    kl_divergence,
    span_target,
)
from distill.errors import BadValueError

KD_TERMS = ("logit_kd", "temporal_kd", "hint", "attention_transfer")


class WeightedLosses(nn.Module):
    """The recipe's loss terms and weights.

    `additive`: L = w_task * task + sum_i w_i * L_i.
    `convex`:   L = (1 - sum_i w_i) * task + sum_i w_i * L_i (the paper's (1 - lambda) form).
    Terms with learnable parameters (attention head, hint projection) are training-only.
    """

    def __init__(
        self,
        cfg,
        task: str,
        channels: int | None = None,
        teacher_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.weighting = cfg.weighting
        self.weights: dict[str, float] = {"task": float(cfg.task.weight)}
        self.terms = nn.ModuleDict({"task": TaskLoss(task, cfg.task.label_smoothing)})
        if cfg.logit_kd.weight > 0:
            self.terms["logit_kd"] = LogitKD(task, cfg.logit_kd.temperature)
        t = cfg.temporal_kd
        if t.weight > 0:
            self.terms["temporal_kd"] = TemporalAttentionKD(
                channels,
                target=t.target,
                direction=t.direction,
                temperature=t.temperature,
                teacher_temperature=t.teacher_temperature,
                use_student_attention=t.use_student_attention,
            )
        if cfg.hint.weight > 0:
            if teacher_dim is None:
                raise BadValueError("losses.hint needs a teacher that returns hidden states")
            self.terms["hint"] = TimeAlignedHint(channels, teacher_dim, cfg.hint.distance)
        if cfg.attention_transfer.weight > 0:
            self.terms["attention_transfer"] = TemporalAttentionTransfer(cfg.attention_transfer.p)
        for name in KD_TERMS:
            if name in self.terms:
                self.weights[name] = float(getattr(cfg, name).weight)
        kd_sum = sum(w for n, w in self.weights.items() if n != "task")
        if self.weighting == "convex":
            if kd_sum > 1:
                raise BadValueError(
                    f"losses.weighting=convex needs the KD weights to sum to <= 1, given {kd_sum}"
                )
            self.weights["task"] = 1.0 - kd_sum

    @property
    def needs_teacher(self) -> bool:
        """Whether any term reads teacher outputs."""
        if any(n in self.terms for n in ("logit_kd", "hint", "attention_transfer")):
            return True
        if "temporal_kd" not in self.terms:
            return False
        return self.terms["temporal_kd"].target_kind in ("teacher", "shuffled")

    @property
    def needs_hidden(self) -> bool:
        """Whether the teacher's hidden states are needed."""
        return "hint" in self.terms

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and each weighted term's raw value (for the log)."""
        values = {name: term(inputs) for name, term in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in values.items())
        if not torch.isfinite(total):
            bad = [n for n, v in values.items() if not torch.isfinite(v)]
            raise FloatingPointError(f"non-finite loss from term(s) {', '.join(bad)}: {values}")
        return total, values


__all__ = [
    "KD_TERMS",
    "LogitKD",
    "LossInputs",
    "TaskLoss",
    "TemporalAttentionHead",
    "TemporalAttentionKD",
    "TemporalAttentionTransfer",
    "TimeAlignedHint",
    "WeightedLosses",
    "entropy",
    "kl_divergence",
    "resample_distribution",
    "resample_time",
    "sharpen",
    "span_target",
]
