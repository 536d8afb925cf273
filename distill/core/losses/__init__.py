"""Loss terms with one signature (`forward(LossInputs) -> Tensor`), combined by recipe weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.core.losses.base import LossInputs, resample_distribution, resample_time, sharpen
from distill.core.losses.features import TemporalAttentionTransfer, TimeAlignedHint
from distill.core.losses.logits import LogitKD, TaskLoss
from distill.core.losses.registry import (
    LossContext,
    LossSpec,
    active_terms,
    available,
    loss_needs,
    register_loss,
    specs,
)
from distill.core.losses.temporal import (
    TemporalAttentionHead,
    TemporalAttentionKD,
    entropy,
    kl_divergence,
    span_target,
)
from distill.core.losses.timed import TimedLoss
from distill.errors import BadValueError

# The registered distillation terms (everything but the task loss), in build order.
KD_TERMS = tuple(s.name for s in specs() if s.distills)


class WeightedLosses(nn.Module):
    """The recipe's loss terms (from the registry, plus `losses.custom`) and weights.

    `additive`: L = w_task * task + sum_i w_i * L_i.
    `convex`:   L = (1 - sum_i w_i) * task + sum_i w_i * L_i (the paper's (1 - lambda) form).
    Terms with learnable parameters (attention head, hint projection) are training-only.
    `class_names` and `frame_window` (the steps a per-step output pools over) reach the terms
    through their LossContext.
    """

    def __init__(
        self,
        cfg,
        task: str,
        channels: int | None = None,
        teacher_dim: int | None = None,
        class_names: list[str] | None = None,
        frame_window: int | None = None,
    ) -> None:
        super().__init__()
        self.weighting = cfg.weighting
        names = tuple(class_names) if class_names is not None else None
        context = LossContext(task, channels, teacher_dim, names, frame_window)
        self.weights: dict[str, float] = {}
        self.terms = nn.ModuleDict()
        self.needs_of: dict[str, frozenset[str]] = {}
        distilling = []
        for term in active_terms(cfg):
            self.terms[term.name] = term.build(context)
            self.weights[term.name] = term.weight
            self.needs_of[term.name] = term.needs
            if term.spec.distills:
                distilling.append(term.name)
        kd_sum = sum(self.weights[name] for name in distilling)
        if self.weighting == "convex":
            if kd_sum > 1:
                raise BadValueError(
                    f"losses.weighting=convex needs the KD weights to sum to <= 1, given {kd_sum}"
                )
            for name in self.weights:
                if name not in distilling:
                    self.weights[name] = 1.0 - kd_sum

    @property
    def needs(self) -> frozenset[str]:
        """What the built terms need together (see registry.NEEDS)."""
        return frozenset().union(*self.needs_of.values())

    @property
    def needs_teacher(self) -> bool:
        """Whether any term reads teacher outputs."""
        return "teacher" in self.needs

    @property
    def needs_hidden(self) -> bool:
        """Whether the teacher's hidden states are needed."""
        return "hidden" in self.needs

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
    "LossContext",
    "LossInputs",
    "LossSpec",
    "TaskLoss",
    "TemporalAttentionHead",
    "TemporalAttentionKD",
    "TemporalAttentionTransfer",
    "TimeAlignedHint",
    "TimedLoss",
    "WeightedLosses",
    "available",
    "entropy",
    "kl_divergence",
    "loss_needs",
    "register_loss",
    "resample_distribution",
    "resample_time",
    "sharpen",
    "span_target",
]
