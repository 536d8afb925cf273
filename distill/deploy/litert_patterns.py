"""Export-time rewrites of a student for XNNPACK, LiteRT's CPU backend: the same function with
operators XNNPACK runs fast in int8. Weights, architecture and outputs stay those of the student
(the rewritten copy is checked against it); only the exported graph changes.

- `TapConv` replaces a convolution with one input channel (the first layer of DS-CNN and
  BC-ResNet). litert-torch writes it as a DEPTHWISE_CONV_2D with a channel multiplier, which
  XNNPACK runs as a convolution whose every kernel tap has one input channel: its int8 kernels
  pack input channels in groups of 4 to 64, so most of the work is padding (measured 2.5x slower
  than float for DS-CNN-S, 7x for BC-ResNet-1). `TapConv` moves the taps onto the channel axis
  (the input is padded and split into stride phases by reshapes, so every tap is a plain slice)
  and runs one 1x1 convolution over `kf * kt` channels: a matrix product.
- `BandConv` replaces a convolution followed by a SubSpectralNorm (BC-ResNet). The norm reshapes
  the map to (C * sub-bands, F / sub-bands, T), which the converter wraps in two TRANSPOSEs and
  two RESHAPEs around a MUL and an ADD in channel-first layout; in channel-last layout the
  per-(channel, frequency) scale is a broadcast with an inner dimension of C, slower still. In
  eval mode the norm is an affine map per (channel, sub-band), so `BandConv` runs the
  convolution once per sub-band on that band's input rows with the band's scale and shift folded
  into its weights and bias, and concatenates the bands along frequency. Where a band has one
  output row, it reads only real input rows (the kernel taps over zero padding dropped), so the
  map needs no PAD.
- `DepthwiseMean` replaces a BC-ResNet frequency mean over 5 or fewer rows in the graph that is
  quantized (`for_int8`). XNNPACK's int8 MEAN costs about 3 ns per output value on x86 (3-5x
  float); a depthwise (F x 1) convolution with weights 1/F computes the same mean for less in
  int8 (9-13 % less int8 time for BC-ResNet-1 on 1 s inputs) and for more in float (1-2 %
  more), so the float file keeps MEAN (`benchmarks/litert_bc_resnet_graphs.py`). Over more
  rows its int8 kernel is the slower one too, so wider means stay.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import DistillError
from distill.students.bc_resnet import FrequencyMean
from distill.students.subspectral_norm import SubSpectralNorm

MEAN_AS_CONV_ROWS = 5  # frequency means over at most this many rows become DepthwiseMean
REWRITE_TOLERANCE = 1e-4  # max |output difference| / (1 + max |output|) of the rewritten copy


class RewriteError(DistillError, RuntimeError):
    """A rewritten student does not compute what the student computes."""


def _pads(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of a conv over (F, T), causal time pad included."""
    pf, pt = conv.padding  # type: ignore[misc]
    return pt + getattr(conv, "causal_pad", 0), pt, pf, pf


def _out_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    return (size - dilation * (kernel - 1) - 1) // stride + 1


class TapConv(nn.Module):
    """A Conv2d with one input channel as (taps on channels) -> 1x1 conv; input (B, 1, F, T)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(conv.kernel_size), tuple(conv.stride)
        self.dilation, self.pads = tuple(conv.dilation), _pads(conv)
        weight = conv.weight.detach()
        self.register_buffer("weight", weight.reshape(weight.shape[0], -1, 1, 1).clone())
        bias = None if conv.bias is None else conv.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kf, kt), (sf, st), (df, dt) = self.kernel, self.stride, self.dilation
        left, right, top, bottom = self.pads
        n_f, n_t = x.shape[2] + top + bottom, x.shape[3] + left + right
        fo, to = _out_size(n_f, kf, sf, df), _out_size(n_t, kt, st, dt)
        ff, tt = sf * math.ceil(n_f / sf), st * math.ceil(n_t / st)  # whole stride phases
        x = F.pad(x[:, 0], (left, right + tt - n_t, top, bottom + ff - n_f))
        # (B, F, T) -> (B, sf, st, F / sf, T / st): tap (i, j) is a plain slice of one phase
        x = x.reshape(x.shape[0], ff // sf, sf, tt // st, st).permute(0, 2, 4, 1, 3)
        taps = []
        for i in range(kf):
            for j in range(kt):
                a, b = i * df, j * dt
                taps.append(x[:, a % sf, b % st, a // sf : a // sf + fo, b // st : b // st + to])
        # one CONCATENATION of kf * kt inputs: XNNPACK takes at most 5, so LiteRT runs this one
        # operator with its built-in kernel (a tree of narrower ones is all XNNPACK but slower:
        # the quantizer calibrates every level apart and requantizes every tap)
        return F.conv2d(torch.stack(taps, dim=1), self.weight, self.bias)


class BandConv(nn.Module):
    """A Conv2d followed by an eval-mode SubSpectralNorm, one conv per frequency sub-band with
    the band's normalisation folded in; input (B, C, F, T) with F = `freq_in`."""

    def __init__(self, conv: nn.Conv2d, norm: SubSpectralNorm, freq_in: int) -> None:
        super().__init__()
        bn = norm.bn
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach()
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach()
        bands = norm.sub_bands
        scale, shift = scale.reshape(-1, bands), shift.reshape(-1, bands)
        bias = torch.zeros(scale.shape[0]) if conv.bias is None else conv.bias.detach()
        self.kernel, self.stride = tuple(conv.kernel_size), tuple(conv.stride)
        self.dilation, self.groups, self.pads = tuple(conv.dilation), conv.groups, _pads(conv)
        n_f = freq_in + self.pads[2] + self.pads[3]
        self.rows = _out_size(n_f, self.kernel[0], self.stride[0], self.dilation[0]) // bands
        self.bands = bands
        # one output row per band: each band reads only real input rows, the taps that would
        # fall on zero padding dropped (no PAD operator: about 9 % less float time for
        # BC-ResNet-1 on 1 s inputs, benchmarks/litert_bc_resnet_graphs.py)
        self.first_rows: list[int] = []
        weight = conv.weight.detach()
        for k in range(bands):
            folded = weight * scale[:, k, None, None, None]
            if self.rows == 1:
                taps = [k * self.stride[0] - self.pads[2] + i * self.dilation[0]
                        for i in range(self.kernel[0])]  # fmt: skip
                keep = [i for i, row in enumerate(taps) if 0 <= row < freq_in]
                self.first_rows.append(taps[keep[0]])
                folded = folded[:, :, keep[0] : keep[-1] + 1]
            self.register_buffer(f"weight{k}", folded.clone())
            self.register_buffer(f"bias{k}", (bias * scale[:, k] + shift[:, k]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rows == 1:
            return self._one_row_bands(x)
        x = F.pad(x, self.pads)
        sf, df = self.stride[0], self.dilation[0]
        span = (self.rows - 1) * sf + df * (self.kernel[0] - 1) + 1  # input rows of one band
        outs = []
        for k in range(self.bands):
            start = k * self.rows * sf
            outs.append(
                F.conv2d(
                    x[:, :, start : start + span],
                    getattr(self, f"weight{k}"),
                    getattr(self, f"bias{k}"),
                    self.stride,
                    0,
                    self.dilation,
                    self.groups,
                )  # fmt: skip
            )
        return torch.cat(outs, dim=2)

    def _one_row_bands(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads[0] or self.pads[1]:
            x = F.pad(x, (self.pads[0], self.pads[1], 0, 0))
        df = self.dilation[0]
        outs = []
        for k, first in enumerate(self.first_rows):
            weight = getattr(self, f"weight{k}")
            span = df * (weight.shape[2] - 1) + 1
            outs.append(
                F.conv2d(
                    x[:, :, first : first + span],
                    weight,
                    getattr(self, f"bias{k}"),
                    (1, self.stride[1]),
                    0,
                    self.dilation,
                    self.groups,
                )  # fmt: skip
            )
        return torch.cat(outs, dim=2)


class DepthwiseMean(nn.Module):
    """(B, C, F, T) -> (B, C, 1, T), the mean over F as a depthwise (F x 1) convolution."""

    def __init__(self, channels: int, freq: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.full((channels, 1, freq, 1), 1.0 / freq))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, groups=self.weight.shape[0])


def _one_channel(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.in_channels == 1
        and module.groups == 1
        and max(module.kernel_size) > 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _band_pairs(model: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, norm name) of every conv directly followed by a SubSpectralNorm."""
    pairs = []
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq.named_children())
            for (name_a, a), (name_b, b) in zip(kids, kids[1:]):
                plain = isinstance(a, nn.Conv2d) and a.padding_mode == "zeros"
                if plain and not isinstance(a.padding, str) and isinstance(b, SubSpectralNorm):
                    pairs.append((seq, name_a, name_b))
    return pairs


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def input_shapes(
    model: nn.Module, modules: list[nn.Module], x: torch.Tensor
) -> tuple[dict[int, tuple[int, ...]], torch.Tensor]:
    """The input shape of each of `modules` reached by model(x), by id, and model(x)."""
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda m, args: shapes.__setitem__(id(m), args[0].shape))
        for m in modules
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {k: tuple(int(d) for d in v) for k, v in shapes.items()}, out


def xnnpack_rewrite(
    student: nn.Module, n_features: int, frames: int, for_int8: bool = False
) -> tuple[nn.Module, list[str]]:
    """An eval-mode copy of `student` with `BandConv` and `TapConv` (and with `for_int8`, the
    graph to quantize, `DepthwiseMean`) in place of the patterns above, checked on a random
    (1, n_features, frames) input (RewriteError beyond REWRITE_TOLERANCE), and the rewrites as
    "<layer>: <kind>" lines."""
    model = copy.deepcopy(student).eval()
    pairs = _band_pairs(model)
    means = [m for m in model.modules() if for_int8 and isinstance(m, FrequencyMean)]
    x = torch.randn(1, n_features, frames, generator=torch.Generator().manual_seed(0))
    shapes, reference = input_shapes(
        model, [seq.get_submodule(a) for seq, a, _ in pairs] + means, x
    )
    names = {id(m): n for n, m in model.named_modules()}
    done = []
    for seq, a, b in pairs:
        conv, norm = seq.get_submodule(a), seq.get_submodule(b)
        if id(conv) in shapes:  # reached by the forward pass
            done.append(f"{names[id(conv)]}: conv + {names[id(norm)]} (SubSpectralNorm) as "
                        f"BandConv")  # fmt: skip
            setattr(seq, a, BandConv(conv, norm, shapes[id(conv)][2]))
            setattr(seq, b, nn.Identity())
    for mean in means:
        if id(mean) in shapes and shapes[id(mean)][2] <= MEAN_AS_CONV_ROWS:
            _set(model, names[id(mean)], DepthwiseMean(*shapes[id(mean)][1:3]))
            done.append(f"{names[id(mean)]}: frequency mean as DepthwiseMean")
    for name, module in list(model.named_modules()):
        if _one_channel(module):
            _set(model, name, TapConv(module))
            done.append(f"{name}: one-input-channel conv as TapConv")
    with torch.no_grad():
        diff = float((model(x) - reference).abs().max())
    if not diff <= REWRITE_TOLERANCE * (1.0 + float(reference.abs().max())):
        raise RewriteError(
            f"the XNNPACK rewrite of {type(student).__name__} changed its output by {diff:.3g}; "
            "export without it (rewrite=False)"
        )
    return model, done


__all__ = [
    "REWRITE_TOLERANCE",
    "MEAN_AS_CONV_ROWS",
    "BandConv",
    "DepthwiseMean",
    "RewriteError",
    "TapConv",
    "input_shapes",
    "xnnpack_rewrite",
]
