"""Token-to-time mapping: a rollout row over tokens -> a distribution over time positions.

Every mapping returns `(attention, spans)`: attention (B, T_t) summing to 1 over the time
positions, spans (T_t, 2) with the (start, end) seconds of the audio each position covers.

Families:
- wav2vec 2.0 / HuBERT / WavLM: one token per conv-feature frame, no CLS (`frame_time_map`).
- AST / ViT on spectrogram patches: CLS (+ distillation) tokens first, then a (freq, time) grid
  of patches in frequency-major order; the frequency patches of each time column are summed
  (`patch_time_map`).
- KWT-style: one token per frame (or group of frames) after a CLS token (`kwt_time_map`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from distill.errors import BadValueError


@dataclass(frozen=True)
class Framing:
    """How frame i sits in the waveform: starts at i·hop (minus win/2 when centered), lasts win."""

    sample_rate: int
    hop_length: int
    win_length: int
    centered: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.win_length <= 0:
            raise BadValueError(f"Framing needs positive sample_rate, hop and win, got {self}")

    def spans(
        self, first: torch.Tensor, last: torch.Tensor, num_samples: int | None = None
    ) -> torch.Tensor:
        """Seconds (K, 2) covered by frames first[k]..last[k] (inclusive), clipped to the clip."""
        offset = self.win_length / 2 if self.centered else 0.0
        start = first.double() * self.hop_length - offset
        end = last.double() * self.hop_length - offset + self.win_length
        start = start.clamp_min(0.0)
        if num_samples is not None:
            start = start.clamp_max(num_samples)
            end = end.clamp_max(num_samples)
        return (torch.stack([start, end], dim=-1) / self.sample_rate).float()


def conv_framing(kernels: Sequence[int], strides: Sequence[int], sample_rate: int) -> Framing:
    """Framing of a stack of 1-D convolutions without padding (the wav2vec 2.0 feature encoder)."""
    if len(kernels) != len(strides) or not kernels:
        raise BadValueError(
            f"conv kernels {list(kernels)} and strides {list(strides)} must be non-empty and of "
            "equal length"
        )
    receptive, jump = 1, 1
    for k, s in zip(kernels, strides):
        receptive += (k - 1) * jump
        jump *= s
    return Framing(sample_rate=sample_rate, hop_length=jump, win_length=receptive)


def normalise(weights: torch.Tensor) -> torch.Tensor:
    """Weights rescaled to sum to 1 over the last axis (a uniform row if all weight is zero)."""
    total = weights.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / weights.shape[-1])
    return torch.where(total > 0, weights / total.clamp_min(1e-30), uniform)


def _check_row(row: torch.Tensor, name: str = "rollout row") -> None:
    if row.dim() != 2:
        raise BadValueError(f"{name} must be (B, N), got {tuple(row.shape)}")


def frame_time_map(
    row: torch.Tensor, framing: Framing, num_samples: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """wav2vec 2.0 family: every token is a frame; the row is renormalised as is."""
    _check_row(row)
    t = row.shape[1]
    idx = torch.arange(t)
    return normalise(row), framing.spans(idx, idx, num_samples)


def _grid_columns(
    grid: tuple[int, int], num_prefix: int, num_tokens: int, what: str
) -> tuple[int, int]:
    f_p, t_p = grid
    if f_p <= 0 or t_p <= 0 or num_prefix < 0:
        raise BadValueError(f"patch grid {grid} and num_prefix {num_prefix} must be positive")
    if num_tokens != num_prefix + f_p * t_p:
        raise BadValueError(
            f"{what} has {num_tokens} tokens, expected {num_prefix} prefix tokens + "
            f"{f_p}x{t_p} patches = {num_prefix + f_p * t_p}"
        )
    return f_p, t_p


def kept_columns(t_p: int, stride_frames: int, num_frames: int | None) -> int:
    """Time columns whose first frame lies inside the real (unpadded) frames."""
    if num_frames is None:
        return t_p
    keep = min(t_p, -(-num_frames // stride_frames))
    if keep <= 0:
        raise BadValueError(f"no time column covers the {num_frames} real frames")
    return keep


def patch_time_map(
    row: torch.Tensor,
    framing: Framing,
    grid: tuple[int, int],
    patch_frames: int,
    stride_frames: int,
    num_prefix: int,
    num_frames: int | None = None,
    num_samples: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectrogram-patch models: drop prefix tokens, sum frequency patches per time column.

    `grid` is (freq_patches, time_patches) in frequency-major token order; time column j
    covers frames j·stride .. j·stride + patch − 1. With `num_frames` (real frames before any
    padding) columns that start in padding are dropped; the result is renormalised.
    """
    _check_row(row)
    f_p, t_p = _grid_columns(grid, num_prefix, row.shape[1], "rollout row")
    patches = row[:, num_prefix:].reshape(row.shape[0], f_p, t_p)
    per_time = patches.sum(dim=1)
    keep = kept_columns(t_p, stride_frames, num_frames)
    first = torch.arange(keep) * stride_frames
    spans = framing.spans(first, first + patch_frames - 1, num_samples)
    return normalise(per_time[:, :keep]), spans


def kwt_time_map(
    row: torch.Tensor,
    framing: Framing,
    frames_per_token: int = 1,
    num_prefix: int = 1,
    num_frames: int | None = None,
    num_samples: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KWT-style: CLS token(s) then one token per `frames_per_token` frames."""
    _check_row(row)
    t_p = row.shape[1] - num_prefix
    stride = frames_per_token
    return patch_time_map(
        row, framing, (1, t_p), stride, stride, num_prefix, num_frames, num_samples
    )


def hidden_to_time(
    hidden: torch.Tensor, grid: tuple[int, int], num_prefix: int, keep: int | None = None
) -> torch.Tensor:
    """Hidden states (B, N, D) -> (B, T_t, D): prefix dropped, mean over frequency patches."""
    if hidden.dim() != 3:
        raise BadValueError(f"hidden states must be (B, N, D), got {tuple(hidden.shape)}")
    f_p, t_p = _grid_columns(grid, num_prefix, hidden.shape[1], "hidden states")
    b, _, d = hidden.shape
    per_time = hidden[:, num_prefix:].reshape(b, f_p, t_p, d).mean(dim=1)
    return per_time if keep is None else per_time[:, :keep]
