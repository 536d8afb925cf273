"""Targets over time for per-step training (`losses.timed`), as pure functions of plain tensors.

Time: the student's steps are given by `step_seconds` (T',), the end of the audio each step has
heard. A teacher rollout (B, M) is mass spread evenly inside M equal bins of the clip; spans are
(B, S, 2) seconds, NaN-padded.

A per-step target is a pair (w, mask), each (B, T', C): w in [0, 1] is the target of the
positive class(es) at a step, mask says which steps take part. C = 1 for single-label tasks
(the clip's label against the merged non-keyword classes) and C = K for multi-label tasks
(every class its own sigmoid).

The timing mapping (`teacher_timed_weights`, `span_timed_weights`): the keyword target at a step
is the share of the keyword's evidence that the step has heard and that still lies inside the
window its posterior pools over. A causal detector has heard all of the word only once the word
has ended: the target rises over the attended region (or the true span), is 1 from its end on,
and falls back as the word leaves the window (never, for the window of the whole clip and for
recurrent students, whose state keeps the whole stream). Before the word the target is 0: the
detector must not fire on what it has not heard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-12


def bin_heard_fraction(mass: Tensor, step_seconds: Tensor, clip_seconds: float) -> Tensor:
    """Share of `mass` (B, M), spread evenly inside M equal bins of the clip, that lies before
    each step time: (B, T'), non-decreasing in time, the total mass at the clip's end."""
    bins = mass.shape[1]
    width = clip_seconds / bins
    starts = torch.arange(bins, device=mass.device, dtype=mass.dtype) * width
    times = step_seconds.to(mass.device, mass.dtype)
    inside = ((times[:, None] - starts[None, :]) / width).clamp(0.0, 1.0)  # (T', M)
    return mass @ inside.T


def span_heard_fraction(
    spans: Tensor, step_seconds: Tensor, clip_seconds: float
) -> tuple[Tensor, Tensor]:
    """Share of the spans' total length (inside the clip) before each step time, (B, T'), and
    whether a clip has any span inside the clip (B,); clips without one get zeros."""
    onset = spans[..., 0].clamp(0.0, clip_seconds)
    offset = spans[..., 1].clamp(0.0, clip_seconds)
    length = torch.nan_to_num((offset - onset).clamp_min(0.0), nan=0.0)  # (B, S)
    times = step_seconds.to(spans.device, spans.dtype)[None, None, :]
    heard = (torch.minimum(times, offset[..., None]) - onset[..., None]).clamp_min(0.0)
    heard = torch.nan_to_num(heard, nan=0.0).sum(dim=1)  # (B, T')
    total = length.sum(dim=1)
    has_span = total > 0
    return heard / total.clamp_min(EPS)[:, None], has_span


def attended_region(rollout: Tensor, fraction: float) -> Tensor:
    """The rollout (B, M) kept where it reaches `fraction` of its clip's peak, renormalised to
    sum 1 (fraction 0 keeps all of it)."""
    peak = rollout.amax(dim=1, keepdim=True)
    kept = torch.where(rollout >= fraction * peak, rollout, torch.zeros_like(rollout))
    return kept / kept.sum(dim=1, keepdim=True).clamp_min(EPS)


def window_weights(heard: Tensor, window: int | None) -> Tensor:
    """Share of the evidence inside the last `window` steps, from the share heard by each step
    (B, T'): heard[t] - heard[t - window] (None: everything heard so far)."""
    if window is None or window >= heard.shape[1]:
        return heard
    return heard - F.pad(heard[:, :-window], (window, 0))


def teacher_timed_weights(
    rollout: Tensor,
    step_seconds: Tensor,
    clip_seconds: float,
    region: float = 0.5,
    window: int | None = None,
) -> Tensor:
    """Keyword weight per step (B, T') from the teacher's rollout (B, M): the share of the
    attended region's mass (`attended_region`) heard by the step and still in its window."""
    kept = attended_region(rollout.float(), region)
    return window_weights(bin_heard_fraction(kept, step_seconds, clip_seconds), window)


def span_timed_weights(
    spans: Tensor, step_seconds: Tensor, clip_seconds: float, window: int | None = None
) -> tuple[Tensor, Tensor]:
    """Keyword weight per step (B, T') from the ground-truth spans (the oracle of
    `teacher_timed_weights`), and whether each clip has a span (B,)."""
    heard, has_span = span_heard_fraction(spans.float(), step_seconds, clip_seconds)
    return window_weights(heard, window), has_span


def clip_targets(
    weights: Tensor, positive: Tensor, valid: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(w, mask), each (B, T', C), from per-step keyword weights (B, T') and which classes
    are positive in each clip (B, C): positives follow the weights, negatives are 0 at every
    step. `valid` (B,): clips whose timing is known; a positive of any other clip takes no part."""
    positive = positive.bool()
    w = weights[:, :, None] * positive[:, None, :].to(weights.dtype)
    mask = torch.ones_like(w)
    if valid is not None:
        unknown = positive & ~valid.bool()[:, None]
        mask = mask * (~unknown)[:, None, :].to(w.dtype)
    return w, mask


def maxpool_targets(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
    """The max-pooling loss's targets (Sun et al. 2016): for a positive class, target 1 at the
    one step where its posterior `scores` (B, T', C) is highest and no other step; for a
    negative class, target 0 at every step. Returns (w, mask), each (B, T', C)."""
    positive = positive.bool()[:, None, :]
    peak = F.one_hot(scores.argmax(dim=1), scores.shape[1]).transpose(1, 2).to(scores.dtype)
    w = peak * positive.to(scores.dtype)
    mask = torch.where(positive, peak, torch.ones_like(peak))
    return w, mask


def frame_logit_targets(teacher: Tensor, step_seconds: Tensor, clip_seconds: float) -> Tensor:
    """The teacher's per-token logits (B, M, K), tokens centred in M equal bins of the clip,
    linearly interpolated at each step time (held flat beyond the first and last centres):
    (B, T', K)."""
    bins = teacher.shape[1]
    times = step_seconds.to(teacher.device, torch.float32)
    position = (times * bins / clip_seconds - 0.5).clamp(0.0, bins - 1.0)
    lo = position.floor().long()
    hi = (lo + 1).clamp_max(bins - 1)
    frac = (position - lo.to(position.dtype))[None, :, None]
    return teacher[:, lo] * (1 - frac) + teacher[:, hi] * frac


__all__ = [
    "attended_region",
    "bin_heard_fraction",
    "clip_targets",
    "frame_logit_targets",
    "maxpool_targets",
    "span_heard_fraction",
    "span_timed_weights",
    "teacher_timed_weights",
    "window_weights",
]
