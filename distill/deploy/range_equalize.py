"""Activation-range equalization before int8: the same function, per-channel ranges evened out.

Per-tensor int8 gives every channel of a tensor the same step. Where one channel is nearly
constant (BC-ResNet-1's last transition block on 8 s clips: one channel of its 1x1 convolution
output sits at 0.75 +- 0.014 while others reach 21, an int8 step of 0.08) that channel is lost,
and the sub-spectral norm after the next (depthwise) convolution, which divides by its tiny
spread, turns the rounding into large errors: a 4 % change of that one tensor's range moved
the fake-quantized model between 19 % and 41 % validation accuracy.

For a run `Conv -> BatchNorm -> ReLU -> Conv` inside an `nn.Sequential`, ReLU commutes with a
positive per-channel scale: multiplying channel c of the BatchNorm's affine weight and bias by
s_c and dividing the next convolution's weights on input channel c by s_c leaves the output
unchanged (the zero padding stays zero). With s_c = (largest channel range) / (range of channel
c) over calibration clips, every channel spans the tensor's range and gets the full 256 levels.
The weights stay per-channel int8: a per-output-channel scale does not change their rounding.
This is the activation counterpart of cross-layer equalization (Nagel et al., "Data-Free
Quantization", ICCV 2019), which evens out weight ranges instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from distill.deploy.litert_patterns import REWRITE_TOLERANCE, RewriteError
from distill.errors import BadValueError

DEAD_CHANNEL = 1e-3  # a channel whose range is below this share of the largest is left as is
MAX_VALUES = 2_000_000  # calibration values kept per run (an even stride through the rest)


def equalizable_runs(student: nn.Module) -> Iterator[tuple[str, nn.Module, nn.Module, nn.Module]]:
    """(name of the ReLU, BatchNorm, ReLU, next conv) of every `Conv -> BatchNorm (affine) ->
    ReLU -> Conv` run of consecutive modules in an `nn.Sequential` of `student`."""
    convs = (nn.Conv1d, nn.Conv2d)
    for name, seq in student.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        for i in range(len(kids) - 3):
            (_, conv), (_, bn), (relu_name, relu), (_, nxt) = kids[i : i + 4]
            if (
                isinstance(conv, convs)
                and isinstance(bn, nn.modules.batchnorm._BatchNorm)
                and bn.affine
                and type(relu) is nn.ReLU
                and isinstance(nxt, convs)
            ):
                yield (f"{name}.{relu_name}" if name else relu_name), bn, relu, nxt


def channel_ranges(
    student: nn.Module, relus: list[nn.Module], calibration: list[np.ndarray], percentile: float
) -> list[torch.Tensor]:
    """Per-channel upper range of each ReLU's output over the calibration batches: the
    `percentile`-th percentile of the channel's values (100: the maximum)."""
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(relus))}
    hooks = [
        relu.register_forward_hook(
            lambda m, i, out, k=k: seen[k].append(out.detach().transpose(0, 1).flatten(1))
        )
        for k, relu in enumerate(relus)
    ]
    try:
        with torch.no_grad():
            for batch in calibration:
                student(torch.as_tensor(batch))
    finally:
        for hook in hooks:
            hook.remove()
    ranges = []
    for k in range(len(relus)):
        values = torch.cat(seen[k], dim=1)  # (C, values)
        stride = max(1, values.shape[1] // max(1, MAX_VALUES // values.shape[0]))
        kept = values[:, ::stride].numpy()
        ranges.append(torch.from_numpy(np.percentile(kept, percentile, axis=1)).float())
    return ranges


def _divide_input_channels(conv: nn.Module, scale: torch.Tensor) -> None:
    """Divide `conv`'s weights on input channel c by scale[c] (any groups)."""
    w = conv.weight
    per_group_in = w.shape[1]
    per_group_out = w.shape[0] // (conv.in_channels // per_group_in)
    group = torch.arange(w.shape[0]) // per_group_out
    index = group[:, None] * per_group_in + torch.arange(per_group_in)[None, :]
    shape = (*index.shape, *([1] * (w.dim() - 2)))
    w.div_(scale[index].reshape(shape))


def equalize_activation_ranges(
    student: nn.Module, calibration: list[np.ndarray], percentile: float = 100.0
) -> tuple[nn.Module, list[str]]:
    """A copy of `student` (eval mode) with every equalizable run's ReLU output evened out per
    channel (module docstring), and a "<relu>: ..." line per run changed; RewriteError when the
    copy's logits differ from the student's on the first calibration batch."""
    if not calibration:
        raise BadValueError("range equalization needs at least one calibration batch; got none")
    student = student.eval()
    copied = copy.deepcopy(student)
    runs = list(equalizable_runs(copied))
    if not runs:
        return student, []
    ranges = channel_ranges(copied, [relu for _, _, relu, _ in runs], calibration, percentile)
    lines = []
    with torch.no_grad():
        for (name, bn, _, nxt), r in zip(runs, ranges):
            top = float(r.max())
            if top <= 0.0:
                continue
            live = r > DEAD_CHANNEL * top
            scale = torch.where(live, top / r.clamp_min(1e-30), torch.ones_like(r))
            bn.weight.mul_(scale)
            bn.bias.mul_(scale)
            _divide_input_channels(nxt, scale)
            lines.append(
                f"{name}: channel ranges equalized (scales 1 to {float(scale.max()):.3g}, "
                f"{int((~live).sum())} dead channels left)"
            )
        x = torch.as_tensor(calibration[0])
        want, got = student(x), copied(x)
    error = float((got - want).abs().max()) / (1.0 + float(want.abs().max()))
    if error > REWRITE_TOLERANCE:
        raise RewriteError(
            f"range equalization changed {type(student).__name__}'s logits by {error:.2e} "
            f"(relative; tolerance {REWRITE_TOLERANCE})"
        )
    return copied, lines


__all__ = ["channel_ranges", "equalizable_runs", "equalize_activation_ranges"]
