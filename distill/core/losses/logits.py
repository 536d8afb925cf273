"""Losses on logits: the task loss and logit knowledge distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.config.schema import LogitKDConfig, TaskLossConfig
from distill.core.losses.base import LossInputs, require
from distill.core.losses.registry import LossContext, register_loss
from distill.errors import BadValueError


class TaskLoss(nn.Module):
    """Cross-entropy (single-label; class indices or soft targets) or BCE (multi-label)."""

    def __init__(self, task: str, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if task not in ("single_label", "multi_label"):
            raise BadValueError(f"task must be single_label or multi_label, given {task!r}")
        self.task = task
        self.label_smoothing = label_smoothing

    def forward(self, inputs: LossInputs) -> Tensor:
        if self.task == "multi_label":
            return F.binary_cross_entropy_with_logits(inputs.logits, inputs.target.float())
        return F.cross_entropy(inputs.logits, inputs.target, label_smoothing=self.label_smoothing)


class LogitKD(nn.Module):
    """Logit distillation.

    Single-label: T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean (Hinton; torchdistill).
    Multi-label: BCE(student logits, sigmoid(teacher logits / T)) (EfficientAT convention).
    """

    def __init__(self, task: str, temperature: float = 4.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise BadValueError(f"losses.logit_kd.temperature must be > 0, given {temperature}")
        self.task = task
        self.temperature = temperature

    def forward(self, inputs: LossInputs) -> Tensor:
        teacher = require(inputs.teacher_logits, "teacher logits", "logit_kd").detach()
        t = self.temperature
        if self.task == "multi_label":
            return F.binary_cross_entropy_with_logits(inputs.logits, torch.sigmoid(teacher / t))
        log_p_s = F.log_softmax(inputs.logits / t, dim=-1)
        log_p_t = F.log_softmax(teacher / t, dim=-1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()
        return kl * t * t


@register_loss("task", config=TaskLossConfig, distills=False, order=0)
def build_task(cfg: TaskLossConfig, context: LossContext) -> TaskLoss:
    """losses.task: the task's own loss, always on."""
    return TaskLoss(context.task, cfg.label_smoothing)


@register_loss(
    "logit_kd",
    config=LogitKDConfig,
    needs_teacher=True,
    arm_tokens={"logit": {}},
    default_weight=0.5,
    order=10,
)
def build_logit_kd(cfg: LogitKDConfig, context: LossContext) -> LogitKD:
    """losses.logit_kd: KD on the teacher's logits."""
    return LogitKD(context.task, cfg.temperature)
