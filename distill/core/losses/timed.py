"""Per-step training of streaming students (`losses.timed`, docs/timed.md): the student's logits
at every output step (`LossInputs.frame_logits`, the posterior the streaming runtime scores at
each hop) are trained towards targets over time.

Targets (`target`), the arms of `distill compare` in brackets:
- `maxpool` [maxpool]: the max-pooling loss (Sun et al. 2016), no teacher and no alignment;
- `teacher` [teacher_timed]: the keyword target follows the teacher's rollout (its attended
  region, heard so far and still in the window; see `timed_targets`);
- `span` [span_timed]: the same mapping on the manifest's ground-truth spans (the oracle);
- `shuffled` [shuffled_timed]: the rollout of another clip of the batch (the control);
- `frame_logit` [frame_logit]: frame-level logit KD from the teacher's per-token class logits.

Single-label tasks: a step's target is the clip's label with weight w and the non-keyword
classes (`_unknown_`, `_silence_`, merged: the detector only needs their sum) with 1 - w;
clips whose label is a non-keyword class have w = 0 everywhere. Multi-label tasks: binary
cross-entropy per class and step, every positive class with the clip's timing. Each clip
weighs the same: the loss is its mean over the steps (and classes) that take part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.config.schema import TimedLossConfig
from distill.core.losses.base import LossInputs, require
from distill.core.losses.registry import LossContext, register_loss
from distill.core.losses.timed_targets import (
    clip_targets,
    frame_logit_targets,
    maxpool_targets,
    span_timed_weights,
    teacher_timed_weights,
)
from distill.data.base import SILENCE, UNKNOWN
from distill.errors import BadValueError

TARGETS = ("maxpool", "teacher", "span", "shuffled", "frame_logit")
FILLERS = (UNKNOWN, SILENCE)


def masked_clip_mean(loss: Tensor, mask: Tensor) -> Tensor:
    """Mean of `loss` (B, T', C) over each clip's masked entries, then over the clips that
    have any (0 with a gradient path when none has)."""
    per_clip = (loss * mask).flatten(1).sum(dim=1)
    count = mask.flatten(1).sum(dim=1)
    used = count > 0
    if not bool(used.any()):
        return loss.sum() * 0.0
    return (per_clip[used] / count[used]).mean()


def timed_cross_entropy(
    frame_logits: Tensor, labels: Tensor, w: Tensor, mask: Tensor, fillers: list[int]
) -> Tensor:
    """Per-step cross-entropy against `w` x label + (1 - w) x (the merged `fillers` classes):
    frame_logits (B, T', K), labels (B,), w and mask (B, T', 1)."""
    logp = F.log_softmax(frame_logits.float(), dim=-1)
    index = labels.long()[:, None, None].expand(-1, logp.shape[1], 1)
    log_label = logp.gather(-1, index)
    log_filler = logp[..., fillers].logsumexp(dim=-1, keepdim=True)
    loss = -(w * log_label + (1 - w) * log_filler)
    return masked_clip_mean(loss, mask)


def timed_binary_cross_entropy(frame_logits: Tensor, w: Tensor, mask: Tensor) -> Tensor:
    """Per-step, per-class binary cross-entropy against `w` (all (B, T', K))."""
    loss = F.binary_cross_entropy_with_logits(frame_logits.float(), w, reduction="none")
    return masked_clip_mean(loss, mask)


def frame_kd(student: Tensor, teacher: Tensor, task: str, temperature: float) -> Tensor:
    """Logit KD at every step (both (B, T', K)): T^2 KL(softmax(t/T) || softmax(s/T)) for
    single-label tasks, BCE(s, sigmoid(t/T)) for multi-label ones; mean over clips and steps."""
    t = temperature
    if task == "multi_label":
        return F.binary_cross_entropy_with_logits(student.float(), torch.sigmoid(teacher / t))
    log_s = F.log_softmax(student.float() / t, dim=-1)
    log_t = F.log_softmax(teacher.float() / t, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean() * t * t


class TimedLoss(nn.Module):
    """Per-step loss on the student's per-step logits (see the module's docstring). No
    parameters. `window`: the steps the per-step posterior pools over (None: all so far)."""

    def __init__(
        self,
        task: str,
        target: str = "teacher",
        class_names: list[str] | tuple[str, ...] | None = None,
        window: int | None = None,
        region: float = 0.5,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise BadValueError(f"losses.timed.target must be one of {TARGETS}, given {target!r}")
        if task not in ("single_label", "multi_label"):
            raise BadValueError(f"task must be single_label or multi_label, given {task!r}")
        self.task, self.target_kind, self.window = task, target, window
        self.region, self.temperature = region, temperature
        self.fillers: list[int] = []
        if task == "single_label":
            names = list(class_names or [])
            self.fillers = [i for i, name in enumerate(names) if name in FILLERS]
            if not self.fillers or len(self.fillers) == len(names):
                fillers = " or ".join(FILLERS)
                raise BadValueError(
                    f"losses.timed needs keyword classes and a non-keyword class ({fillers}) "
                    f"for the steps without the keyword; the classes are {names}"
                )
        self.where = f"losses.timed target {target!r}"

    def positives(self, target: Tensor) -> Tensor:
        """Which classes the targets hold per clip: (B, 1) keyword or not, or (B, K)."""
        if self.task == "multi_label":
            return target > 0.5
        if target.dim() != 1 or target.is_floating_point():
            raise BadValueError(
                f"{self.where} needs class indices (B,), got targets of shape "
                f"{tuple(target.shape)} (mixup's soft targets: set data.augment.mixup_alpha=0)"
            )
        fillers = torch.tensor(self.fillers, device=target.device)
        return ~torch.isin(target, fillers)[:, None]

    def targets(self, inputs: LossInputs, frames: Tensor) -> tuple[Tensor, Tensor]:
        """(w, mask), each (B, T', C), for this step's batch."""
        positive = self.positives(inputs.target)
        if self.target_kind == "maxpool":
            scores = frames.detach().float()
            if self.task == "single_label":
                index = inputs.target.long()[:, None, None].expand(-1, scores.shape[1], 1)
                scores = scores.softmax(dim=-1).gather(-1, index)
            return maxpool_targets(scores, positive)
        times = require(inputs.step_seconds, "the per-step times", self.where)
        length = inputs.clip_seconds
        if length is None:
            raise BadValueError(f"{self.where} needs the clip length in seconds")
        if self.target_kind == "span":
            spans = require(inputs.spans, "ground-truth spans", self.where)
            weights, has_span = span_timed_weights(spans, times, length, self.window)
            return clip_targets(weights, positive, has_span)
        rollout = require(inputs.teacher_attention, "the teacher's rollout", self.where).detach()
        if self.target_kind == "shuffled":
            rollout = rollout.roll(1, dims=0)
        weights = teacher_timed_weights(rollout, times, length, self.region, self.window)
        return clip_targets(weights, positive)

    def forward(self, inputs: LossInputs) -> Tensor:
        frames = require(inputs.frame_logits, "the student's per-step logits", self.where)
        if self.target_kind == "frame_logit":
            teacher = require(
                inputs.teacher_frame_logits,
                "the teacher's per-token class logits (a teacher that gives frame_logits; a "
                "teacher cache built before they existed: `distill cache RECIPE --rebuild`)",
                self.where,
            ).detach()
            times = require(inputs.step_seconds, "the per-step times", self.where)
            if inputs.clip_seconds is None:
                raise BadValueError(f"{self.where} needs the clip length in seconds")
            target = frame_logit_targets(teacher.float(), times, inputs.clip_seconds)
            return frame_kd(frames, target, self.task, self.temperature)
        w, mask = self.targets(inputs, frames)
        if self.task == "multi_label":
            return timed_binary_cross_entropy(frames, w, mask)
        return timed_cross_entropy(frames, inputs.target, w, mask, self.fillers)


@register_loss(
    "timed",
    config=TimedLossConfig,
    needs_teacher=lambda c: c.target in ("teacher", "shuffled", "frame_logit"),
    needs_spans=lambda c: c.target == "span",
    needs_frames=True,
    arm_tokens={
        "maxpool": {"target": "maxpool"},
        "teacher_timed": {"target": "teacher"},
        "span_timed": {"target": "span"},
        "shuffled_timed": {"target": "shuffled"},
        "frame_logit": {"target": "frame_logit"},
    },
    controls=("span_timed", "shuffled_timed"),
    default_weight=1.0,
    order=50,
)
def build_timed(cfg: TimedLossConfig, context: LossContext) -> TimedLoss:
    """losses.timed: per-step targets for a streaming student."""
    return TimedLoss(
        context.task,
        target=cfg.target,
        class_names=context.class_names,
        window=context.frame_window,
        region=cfg.region,
        temperature=cfg.temperature,
    )


__all__ = [
    "FILLERS",
    "TARGETS",
    "TimedLoss",
    "frame_kd",
    "masked_clip_mean",
    "timed_binary_cross_entropy",
    "timed_cross_entropy",
]
