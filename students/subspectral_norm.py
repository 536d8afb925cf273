"""SubSpectral Normalization (Chang et al., arXiv 2103.13620)."""

from __future__ import annotations

import torch
from torch import nn

from distill.errors import BadValueError


class SubSpectralNorm(nn.Module):
    """BatchNorm per (channel, frequency sub-band): (B, C, F, T) with F split into `sub_bands`."""

    def __init__(self, channels: int, sub_bands: int = 5, **bn_kwargs: float) -> None:
        super().__init__()
        self.channels = channels
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands, **bn_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        if f % self.sub_bands != 0:
            raise BadValueError(
                f"SubSpectralNorm: frequency size {f} is not divisible by {self.sub_bands} "
                "sub-bands"
            )
        x = self.bn(x.reshape(b, c * self.sub_bands, f // self.sub_bands, t))
        return x.reshape(b, c, f, t)
