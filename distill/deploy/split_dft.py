"""The STFT power spectrum of the exported frontend as a two-stage (Cooley-Tukey) DFT in
convolution and matrix operators: a fifth of the multiply-adds of the direct DFT and a
sixteenth of its weights, for the default 512-point frames every 160 samples.

With n_fft = N1 * N2 and N2 dividing the hop, frame t's sample n = N2 * n1 + n2 is sample
N2 * (t * hop / N2 + n1) + n2 of the segment: phase n2 of the segment cut into N2 phases. So

- stage 1 is one grouped convolution over the N2 phases (a depthwise convolution with 2 * N1
  outputs per phase, N1 taps, stride hop / N2): A[k1, n2] = sum_n1 w[n] x[n] e^(-2 pi i k1 n / N),
  which is the N1-point DFT of every phase with the window and the twiddle factors in its
  weights (the input is real, so the twiddles fold in);
- stage 2 is one matrix product over n2: X[k1 + N1 * k2] = sum_n2 A[k1, n2] e^(-2 pi i n2 k2 / N2)
  for the k2 that reach bin n_fft // 2;
- |X|^2 follows, and the mel matrix is applied with its rows reordered to (k1, k2) (zero rows
  for the bins past n_fft // 2), so no transpose puts the bins back in order.

Per frame: 2 N1 n_fft + 4 N1 N2 K2 multiply-adds (K2 = n_fft // (2 N1) + 1), against
n_fft (n_fft + 2) for the direct DFT: 51 k against 263 k for the default 512-point frames.
Stage 1 holds 2 N1 n_fft weights (16 k for N1 = 16), the direct DFT n_fft (n_fft + 2) (263 k).
`split_plan` picks N2 (None when no N2 >= 4 divides both n_fft and the hop, and the direct
DFT basis stays).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def split_macs(n_fft: int, n2: int) -> int:
    """Multiply-adds per frame of the two stages with N2 = n2 (the mel product left out)."""
    n1 = n_fft // n2
    k2 = n_fft // (2 * n1) + 1
    return 2 * n1 * n_fft + 4 * n1 * n2 * k2


def split_plan(n_fft: int, hop: int) -> int | None:
    """N2 for the split DFT of `n_fft`-point frames every `hop` samples (the fewest
    multiply-adds over N2 >= 4 dividing both, N1 = n_fft / N2 >= 4; of equals, the fewest
    weights: the smaller N1), or None."""
    options = [n for n in range(4, n_fft // 4 + 1) if n_fft % n == 0 and hop % n == 0]
    if not options:
        return None
    best = min(options, key=lambda n: (split_macs(n_fft, n), n_fft // n))
    return best if split_macs(n_fft, best) < n_fft * (n_fft + 2) else None


class SplitDFTPower(nn.Module):
    """|STFT|^2 as mel power (B, n_mels, T) of padded segments (B, N): frame t covers samples
    [t * hop, t * hop + n_fft), windowed by `window` (n_fft,)."""

    def __init__(self, window: torch.Tensor, hop: int, n2: int, fb: torch.Tensor) -> None:
        super().__init__()
        n_fft = window.numel()
        n1 = n_fft // n2
        self.n1, self.n2, self.stride = n1, n2, hop // n2
        self.k2 = n_fft // (2 * n1) + 1
        n = torch.arange(n_fft, dtype=torch.float64).reshape(n1, n2)  # n = N2 * n1 + n2
        k1 = torch.arange(n1, dtype=torch.float64)
        angle = 2 * math.pi * k1[:, None, None] * n[None] / n_fft  # (k1, n1, n2)
        w = window.double().reshape(n1, n2)[None]
        stage1 = torch.stack([torch.cos(angle) * w, -torch.sin(angle) * w])  # (2, k1, n1, n2)
        # conv weight (N2 * 2 * N1, 1, N1): group n2's outputs are (real, imaginary) x k1
        self.register_buffer("stage1", stage1.permute(3, 0, 1, 2).reshape(-1, 1, n1).float(),
                             persistent=False)  # fmt: skip
        n2s = torch.arange(n2, dtype=torch.float64)[:, None]
        k2s = torch.arange(self.k2, dtype=torch.float64)[None]
        cos, sin = torch.cos(2 * math.pi * n2s * k2s / n2), -torch.sin(2 * math.pi * n2s * k2s / n2)
        # rows (real, imaginary) x n2, columns (real, imaginary) x k2 of a complex product
        stage2 = torch.cat([torch.cat([cos, sin], 1), torch.cat([-sin, cos], 1)])
        self.register_buffer("stage2", stage2.float(), persistent=False)
        bins = (k1[:, None] + n1 * torch.arange(self.k2)[None]).long().reshape(-1)  # (k1, k2)
        rows = torch.zeros(bins.numel(), fb.shape[1], dtype=fb.dtype)
        rows[bins < fb.shape[0]] = fb[bins[bins < fb.shape[0]]]
        self.register_buffer("fb", rows.float(), persistent=False)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        batch, n1, n2 = segments.shape[0], self.n1, self.n2
        phases = segments[:, : segments.shape[-1] // n2 * n2].reshape(batch, -1, n2)
        a = F.conv1d(phases.transpose(1, 2), self.stage1, stride=self.stride, groups=n2)
        a = a.reshape(batch, n2, 2, n1, -1).permute(0, 4, 3, 2, 1)  # (B, T, k1, part, n2)
        spec = torch.matmul(a.reshape(batch, a.shape[1], n1, 2 * n2), self.stage2)
        power = spec[..., : self.k2] ** 2 + spec[..., self.k2 :] ** 2  # (B, T, k1, k2)
        mel = torch.matmul(power.reshape(batch, power.shape[1], n1 * self.k2), self.fb)
        return mel.transpose(1, 2)


__all__ = ["SplitDFTPower", "split_macs", "split_plan"]
