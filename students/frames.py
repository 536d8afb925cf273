"""Per-step (frame-level) outputs of the students that stream statefully.

The streaming runtime (`distill.deploy.stateful`) scores every hop with the student's own head:
CNN students (TC-ResNet, DS-CNN, BC-ResNet) average the last N steps of their feature map (N:
the steps of one window) and apply their classifier; recurrent students (GRU, CRNN, LSTM-P)
classify their last step, the state carrying all history. `frame_logits` gives that same
posterior at every output step of a training clip, with the same weights and the same
`forward_head`: the pooled head applied per step, not a new per-step classifier, so the network
trained per step is the deployed one and its logits at step t are what the runtime scores at
the hop that ends with step t. With the window of the whole clip, the last step's logits are
the clip logits, `forward(x)`.

`frame_grid` says, per student, on which axis of `forward_features` time runs, how it pools,
which submodule outputs the feature map (so that a forward hook reads it during the plain
`forward`), and which input frame each output step has heard last (`last_frames`): step t has
seen frames 0 .. t * stride + offset (stride: input frames per step; offset: frames consumed by
valid convolutions, 6 for CRNN). `causal_problem` names what would let a step see the future.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from distill.students.bc_resnet import BCResNet
from distill.students.causal import CausalConv2d
from distill.students.crnn import CRNN
from distill.students.ds_cnn import DSCNN
from distill.students.gru import GRUNet
from distill.students.lstm_p import LSTMP
from distill.students.tc_resnet import TCResNet
from torch import nn

from distill.errors import BadValueError

POOLINGS = ("mean", "last")


@dataclass(frozen=True)
class FrameGrid:
    """How a student's feature map runs over time.

    axis: time axis of `forward_features` (-1 for (B, C, F, T') maps, 1 for (B, T', C) states).
    pooling: "mean" (the head averages the window's steps) or "last" (the head reads the last).
    stride, offset: step t has heard input frames 0 .. t * stride + offset.
    module: the submodule whose output (element 0 of a tuple) is `forward_features`' output.
    """

    axis: int
    pooling: str
    stride: int
    offset: int = 0
    module: str = "blocks"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS or self.stride < 1 or self.offset < 0:
            raise BadValueError(f"invalid frame grid {self}")

    def steps(self, frames: int) -> int:
        """Output steps of `frames` input frames."""
        return max(0, (frames - 1 - self.offset) // self.stride + 1)

    def last_frames(self, steps: int) -> torch.Tensor:
        """The last input frame each of `steps` output steps has heard, (steps,)."""
        return torch.arange(steps) * self.stride + self.offset


def _tc_resnet(model: TCResNet) -> FrameGrid:
    strided = sum(1 for block in model.blocks if not isinstance(block.shortcut, nn.Identity))
    return FrameGrid(-1, "mean", 2**strided, 0, "blocks")


def _ds_cnn(model: DSCNN) -> FrameGrid:
    stride = model.stem[1].stride[1]
    for block in model.blocks:
        stride *= block.dw.stride[1]
    return FrameGrid(-1, "mean", stride, 0, "blocks")


def _crnn(model: CRNN) -> FrameGrid:
    convs = [m for m in model.convs if isinstance(m, nn.Conv2d)]
    if any(c.stride[1] != 1 or c.dilation[1] != 1 for c in convs):
        raise BadValueError("CRNN: per-step outputs need time stride and dilation 1")
    return FrameGrid(1, "last", 1, sum(c.kernel_size[1] - 1 for c in convs), "rnn")


_GRIDS = {
    TCResNet: _tc_resnet,
    DSCNN: _ds_cnn,
    BCResNet: lambda model: FrameGrid(-1, "mean", 1, 0, "neck"),
    GRUNet: lambda model: FrameGrid(1, "last", 1, 0, "rnn"),
    CRNN: _crnn,
    LSTMP: lambda model: FrameGrid(1, "last", 1, 0, "rnn"),
}


def frame_grid(model: nn.Module) -> FrameGrid:
    """The time grid of a built-in streaming student; an error names the students that have one."""
    build = _GRIDS.get(type(model))
    if build is None:
        names = ", ".join(sorted(k.__name__ for k in _GRIDS))
        raise BadValueError(
            f"per-step outputs are defined for the students that stream statefully ({names}); "
            f"{type(model).__name__} is not one of them"
        )
    return build(model)


def causal_problem(model: nn.Module) -> str | None:
    """What lets an output step see input frames after its own (None: the student is causal)."""
    for name, module in model.named_modules():
        conv = isinstance(module, nn.Conv2d) and not isinstance(module, CausalConv2d)
        if conv and (isinstance(module.padding, str) or module.padding[1] > 0):
            return f"conv {name!r} pads time on both sides (SAME padding)"
        if isinstance(module, nn.ZeroPad2d) and any(module.padding[:2]):
            return f"padding {name!r} pads time on both sides (SAME padding)"
        if isinstance(module, nn.RNNBase) and module.bidirectional:
            return f"recurrent layer {name!r} is bidirectional"
    return None


def window_mean(maps: torch.Tensor, window: int | None) -> torch.Tensor:
    """Mean over the last `window` steps (fewer at the start; None: all so far) at every step
    of the last axis."""
    total = maps.cumsum(dim=-1)
    steps = maps.shape[-1]
    count = torch.arange(1, steps + 1, device=maps.device, dtype=maps.dtype)
    if window is not None and window < steps:
        total = total - nn.functional.pad(total[..., :-window], (window, 0))
        count = count.clamp_max(window)
    return total / count


def frame_logits(
    model: nn.Module, maps: torch.Tensor, grid: FrameGrid, window: int | None = None
) -> torch.Tensor:
    """The student's head at every output step of `maps` (its `forward_features` output):
    (B, T', K). "mean" students: the head on the mean of the last `window` steps (None: all
    steps so far); "last" students: the head on each step."""
    if grid.pooling == "mean":
        pooled = window_mean(maps.movedim(grid.axis, -1), window)  # (B, C, F, T')
        b, steps = pooled.shape[0], pooled.shape[-1]
        per_step = pooled.movedim(-1, 1).reshape(b * steps, *pooled.shape[1:-1], 1)
    else:
        seq = maps.movedim(grid.axis, 1)  # (B, T', C)
        b, steps = seq.shape[:2]
        per_step = seq.reshape(b * steps, 1, *seq.shape[2:])
    return model.forward_head(per_step).reshape(b, steps, -1)


__all__ = ["FrameGrid", "causal_problem", "frame_grid", "frame_logits", "window_mean"]
