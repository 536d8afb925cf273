"""Temporal attention KD (Choi et al. 2022): a training-only head on the student's time features
is pulled towards the teacher's rolled-out attention over time; plus its control targets."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from distill.config.schema import TemporalKDConfig
from distill.core.losses.base import LossInputs, require, resample_distribution, sharpen
from distill.core.losses.registry import LossContext, register_loss
from distill.errors import BadValueError

TARGETS = ("teacher", "span", "shuffled", "uniform")


class TemporalAttentionHead(nn.Module):
    """a_S = softmax_t(c' q / temperature): a learned query q over features c' (B, T', C)."""

    def __init__(self, channels: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.query = nn.Linear(channels, 1, bias=False)
        self.temperature = temperature

    def logits(self, features: Tensor) -> Tensor:
        """Attention logits over time, (B, T')."""
        return self.query(features).squeeze(-1) / self.temperature

    def forward(self, features: Tensor) -> Tensor:
        return torch.softmax(self.logits(features), dim=-1)


def span_coverage(spans: Tensor, steps: int, clip_seconds: float) -> Tensor:
    """Seconds of each of `steps` equal time bins covered by the ground-truth spans (B, S, 2
    seconds; NaN-padded), summed over a clip's spans: (B, steps)."""
    edges = torch.linspace(0, clip_seconds, steps + 1, device=spans.device, dtype=spans.dtype)
    lo, hi = edges[:-1], edges[1:]
    onset = spans[..., 0:1]
    offset = spans[..., 1:2]
    overlap = (torch.minimum(hi, offset) - torch.maximum(lo, onset)).clamp_min(0)  # (B, S, steps)
    return torch.nan_to_num(overlap, nan=0.0).sum(dim=1)


def span_target(spans: Tensor, steps: int, clip_seconds: float) -> tuple[Tensor, Tensor]:
    """A box over the ground-truth spans (B, S, 2 seconds; NaN-padded) on `steps` equal time bins,
    each bin weighted by its overlap with the spans, normalised to a distribution (B, steps).

    Returns (target, has_span): clips without a span inside the clip (e.g. `_silence_`) get an
    all-zero row and has_span False; the loss leaves them out.
    """
    mass = span_coverage(spans, steps, clip_seconds)
    total = mass.sum(dim=1, keepdim=True)
    has_span = total.squeeze(1) > 0
    return mass / total.clamp_min(1e-12), has_span


class TemporalAttentionKD(nn.Module):
    """KL between a target distribution over time and the student's attention a_S.

    target: `teacher` (rolled-out a_T, linearly interpolated to T'), or the controls `span`
    (ground-truth box), `shuffled` (a_T of another clip in the batch), `uniform` (flat).
    direction: `forward` is KL(target || a_S) (the paper), `reverse` KL(a_S || target).
    With `use_student_attention`, a_S is the student's own attention (mean over heads) and the
    module has no parameters.
    """

    def __init__(
        self,
        channels: int | None,
        target: str = "teacher",
        direction: str = "forward",
        temperature: float = 1.0,
        teacher_temperature: float = 1.0,
        use_student_attention: bool = False,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise BadValueError(f"temporal_kd target must be one of {TARGETS}, given {target!r}")
        if direction not in ("forward", "reverse"):
            raise BadValueError(
                f"temporal_kd direction must be forward or reverse, given {direction!r}"
            )
        self.target_kind = target
        self.direction = direction
        self.teacher_temperature = teacher_temperature
        self.use_student_attention = use_student_attention
        if use_student_attention:
            self.head = None
        else:
            if channels is None:
                raise BadValueError("temporal_kd needs the tapped feature width to build its head")
            self.head = TemporalAttentionHead(channels, temperature)

    def student_distribution(self, inputs: LossInputs) -> Tensor:
        """a_S over the student's time steps, (B, T')."""
        if self.head is None:
            att = require(inputs.student_attention, "the student's own attention", "temporal_kd")
            att = att.mean(dim=1) if att.dim() == 3 else att
            return att / att.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.head(require(inputs.time_features, "tapped time features", "temporal_kd"))

    def target(self, inputs: LossInputs, steps: int) -> Tensor:
        """The target distribution over the student's `steps` time steps, (B, steps)."""
        batch = inputs.logits.shape[0]
        if self.target_kind == "uniform":
            return inputs.logits.new_full((batch, steps), 1.0 / steps)
        if self.target_kind == "span":
            spans = require(inputs.spans, "ground-truth spans", "temporal_kd target 'span'")
            if inputs.clip_seconds is None:
                raise BadValueError("temporal_kd target 'span' needs the clip length in seconds")
            return span_target(spans.float(), steps, inputs.clip_seconds)[0]
        teacher = require(
            inputs.teacher_attention, "the teacher's temporal attention", "temporal_kd"
        )
        teacher = sharpen(teacher.detach().float(), self.teacher_temperature)
        if self.target_kind == "shuffled":
            teacher = teacher.roll(1, dims=0)
        return resample_distribution(teacher, steps)

    def forward(self, inputs: LossInputs) -> Tensor:
        a_s = self.student_distribution(inputs)
        target = self.target(inputs, a_s.shape[1])
        if self.target_kind == "span":  # clips without a span (silence) take no part
            has_span = span_target(inputs.spans.float(), 1, inputs.clip_seconds)[1]
            if not bool(has_span.any()):
                return a_s.sum() * 0.0
            a_s, target = a_s[has_span], target[has_span]
        return (
            kl_divergence(target, a_s)
            if self.direction == "forward"
            else kl_divergence(a_s, target)
        )


@register_loss(
    "temporal_kd",
    config=TemporalKDConfig,
    needs_teacher=lambda c: c.target in ("teacher", "shuffled"),
    needs_features=lambda c: not c.use_student_attention,
    needs_student_attention=lambda c: bool(c.use_student_attention),
    needs_spans=lambda c: c.target == "span",
    arm_tokens={
        "temporal": {"target": "teacher"},
        "span": {"target": "span"},
        "shuffled": {"target": "shuffled"},
        "uniform": {"target": "uniform"},
    },
    controls=("span", "shuffled", "uniform"),
    default_weight=0.25,
    order=20,
)
def build_temporal_kd(cfg: TemporalKDConfig, context: LossContext) -> TemporalAttentionKD:
    """losses.temporal_kd: the paper's loss, or one of its controls (span, shuffled, uniform)."""
    return TemporalAttentionKD(
        context.channels,
        target=cfg.target,
        direction=cfg.direction,
        temperature=cfg.temperature,
        teacher_temperature=cfg.teacher_temperature,
        use_student_attention=cfg.use_student_attention,
    )


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Batch-mean KL(p || q) for distributions over the last axis (0 log 0 = 0)."""
    log_q = torch.log(q.clamp_min(1e-12))
    log_p = torch.log(p.clamp_min(1e-12))
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1).mean()


def entropy(p: Tensor) -> Tensor:
    """Entropy in nats of distributions over the last axis, (B,)."""
    return -(torch.where(p > 0, p * torch.log(p.clamp_min(1e-12)), torch.zeros_like(p))).sum(-1)


def uniform_entropy(steps: int) -> float:
    """Entropy of the flat distribution over `steps` positions."""
    return math.log(steps)
