"""What every loss term sees, and helpers that put teacher time onto the student's time grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import BadValueError


@dataclass
class LossInputs:
    """One training step's tensors, handed to every loss term (unused fields stay None).

    logits: student logits (B, K). target: class indices (B,) or (soft/multi-hot) targets (B, K).
    time_features: tapped student features c' (B, T', C). student_attention: the student's own
    attention (B, H, T') when it has one. teacher_*: logits (B, K), rolled-out attention over time
    (B, T_t) summing to 1, last hidden states (B, T_t, D). spans: ground-truth keyword/event spans
    (B, S, 2) in seconds, NaN-padded. clip_seconds: length of the clips in the batch.
    frame_logits: the student's per-step logits (B, T', K) as the streaming runtime pools them,
    step_seconds: (T',) the end of the audio each step has heard (seconds from the clip start),
    teacher_frame_logits: the teacher's per-token class logits (B, T_t, K); see losses.timed.
    """

    logits: Tensor
    target: Tensor
    time_features: Tensor | None = None
    student_attention: Tensor | None = None
    teacher_logits: Tensor | None = None
    teacher_attention: Tensor | None = None
    teacher_hidden: Tensor | None = None
    spans: Tensor | None = None
    clip_seconds: float | None = None
    frame_logits: Tensor | None = None
    step_seconds: Tensor | None = None
    teacher_frame_logits: Tensor | None = None


def resample_time(x: Tensor, length: int) -> Tensor:
    """Linearly interpolate (B, T) or (B, T, D) along time to `length` steps (centres aligned)."""
    if x.shape[1] == length:
        return x
    squeeze = x.dim() == 2
    seq = x.unsqueeze(-1) if squeeze else x
    out = F.interpolate(seq.transpose(1, 2), size=length, mode="linear", align_corners=False)
    out = out.transpose(1, 2)
    return out.squeeze(-1) if squeeze else out


def resample_distribution(p: Tensor, length: int) -> Tensor:
    """A distribution over time (B, T) interpolated to `length` steps and renormalised to sum 1."""
    q = resample_time(p, length).clamp_min(0)
    return q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """p^(1/temperature), renormalised: temperature < 1 sharpens, > 1 flattens, 1 is identity."""
    if temperature == 1.0:
        return p
    logp = torch.log(p.clamp_min(1e-12)) / temperature
    return torch.softmax(logp, dim=-1)


def require(value: Tensor | None, what: str, loss: str) -> Tensor:
    """The tensor, or an error saying which loss needs what."""
    if value is None:
        raise BadValueError(f"loss '{loss}' needs {what}, which this step did not provide")
    return value
