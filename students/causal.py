"""Causal time convolution for students that can run as stateful streams."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class CausalConv2d(nn.Conv2d):
    """`nn.Conv2d` on (B, C, F, T) maps whose time axis is zero-padded on the left only.

    The (k_t - 1) * d_t pad zeros all sit before the first frame, so output step t sees input
    frames up to t * stride_t and nothing later: the layer streams frame by frame with no delay
    (a ring buffer of the last inputs replaces the zeros). The frequency axis is padded with
    `freq_padding` on both sides as usual. Parameters and state-dict keys are those of
    `nn.Conv2d`, so a causal model loads the weights of a same-shaped symmetric one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        freq_padding: int = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        kernel, dil = _pair(kernel_size), _pair(dilation)
        super().__init__(
            in_channels,
            out_channels,
            kernel,
            stride,
            padding=(freq_padding, 0),
            dilation=dil,
            groups=groups,
            bias=bias,
        )
        self.causal_pad = dil[1] * (kernel[1] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.causal_pad, 0)))
