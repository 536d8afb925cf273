"""Stateful streaming as one fixed-shape step with explicit state: what the stateful ONNX runs.

`StepModel(samples, *states) -> (logits, ready, *next_states)` consumes exactly `step_samples`
new samples per call and gives the posterior logits of `StatefulRunner` (distill.deploy.stateful)
after the same audio: same frames, same model steps, same pooling. Every state starts at zero.

How a fixed shape stays exact. `plan_steps` runs `StatefulRunner` for a few steps and records,
for each temporal layer (a convolution in time, a recurrent layer) of `forward_features`, how
many input steps it gets per call. After the first call that number is constant (`n`, a multiple
of the layer's stride) when the step is a multiple of the student's total time stride; the first
call gets fewer (the frontend emits its first frame after n_fft // 2 + 1 samples, and valid
convolutions need several inputs before their first output). The step layers therefore always
take `n` inputs; on the first call the first `n - n_1` of them stand before the stream start
(index < 0): they are set to zero in front of every convolution, which is exactly the causal
zero padding, and recurrent layers keep their zero state over them. The frontend's first call
reproduces the reflect padding of the centred STFT from the first samples. The pooled window
is a ring of the last N model steps with a count of the valid ones (the mean over fewer steps
at the stream start, as StatefulRunner does); `ready` is 0 until the first model step exists.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distill.data.frontend import Frontend
from distill.deploy.onnx_frontend import LogMelFrames, StepNormalizer
from distill.deploy.stateful import (
    POOL_LAST,
    StatefulRunner,
    StreamConv,
    StreamRNN,
)
from distill.errors import BadValueError, UsageError

PROBE_CALLS = 4


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one CPU thread inside the block (small per-hop ops run fastest so, and
    several threads on a busy machine run them many times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LayerPlan:
    """What one temporal layer gets per call: `n` inputs, `phantom` of them before the stream
    start on the first call; for convs, `keep` inputs carried over (negative: skip -keep)."""

    name: str
    kind: str  # "conv" or "rnn"
    n: int
    phantom: int
    keep: int = 0
    shape: tuple[int, ...] = ()  # input shape without the time axis (conv: (C, F))


@dataclass
class StepPlan:
    """The layers' plans, the frontend's frames per step and the model steps per step."""

    step_samples: int
    frames: int
    frame_phantom: int
    steps: int  # model steps per call
    steps_phantom: int
    window_steps: int
    axis: int
    pooling: str
    layers: list[LayerPlan] = field(default_factory=list)


def _record(net: nn.Module) -> tuple[dict[str, list], list]:
    calls: dict[str, list] = {}
    handles = []
    for name, module in net.named_modules():
        if isinstance(module, StreamConv | StreamRNN):

            def hook(mod, args, out, name=name):  # noqa: ANN001, ANN202
                x = args[0]
                n = x.shape[-1] if isinstance(mod, StreamConv) else x.shape[1]
                m = out.shape[-1] if isinstance(mod, StreamConv) else out[0].shape[1]
                calls.setdefault(name, []).append((int(n), int(m), tuple(x.shape)))

            handles.append(module.register_forward_hook(hook))
    return calls, handles


def plan_steps(
    model: nn.Module, frontend: Frontend, window_samples: int, step_samples: int
) -> StepPlan:
    """Probe `StatefulRunner` with `step_samples` per call; refuse a step that does not give
    every temporal layer a constant number of inputs after the first call."""
    hop = frontend.hop_length
    if step_samples % hop:
        raise BadValueError(
            f"the stateful step ({step_samples} samples) must be a multiple of the frontend hop "
            f"({hop} samples)"
        )
    if step_samples <= frontend.mel.spectrogram.n_fft // 2:
        raise BadValueError(
            f"the stateful step ({step_samples} samples) must exceed n_fft / 2 "
            f"({frontend.mel.spectrogram.n_fft // 2}): the first step reflects its samples"
        )
    runner = StatefulRunner(model, frontend, window_samples, "softmax")
    calls, handles = _record(runner.net)
    frames, steps = [], []
    try:
        with torch.inference_mode():
            for _ in range(PROBE_CALLS):
                f = runner.frontend.push(torch.zeros(step_samples))
                frames.append(f.shape[-1])
                out = runner.net.forward_features(f[None]) if f.shape[-1] else None
                steps.append(0 if out is None else int(out.shape[runner.axis]))
    finally:
        for h in handles:
            h.remove()
    _check_steady("the frontend", frames, step_samples)
    _check_steady("the model output", steps, step_samples)
    layers = [_layer_plan(name, runner.net.get_submodule(name), c, step_samples)
              for name, c in calls.items()]  # fmt: skip
    axis, pooling = runner.axis, runner.pooling
    return StepPlan(
        step_samples, frames[1], frames[1] - frames[0], steps[1], steps[1] - steps[0],
        runner.window_steps if pooling != POOL_LAST else 1, axis, pooling, layers,
    )  # fmt: skip


def _check_steady(what: str, counts: list[int], step_samples: int) -> None:
    if len(set(counts[1:])) != 1 or counts[1] < counts[0] or counts[1] == 0:
        raise BadValueError(
            f"a stateful step of {step_samples} samples gives {what} {counts} steps on its first "
            f"{len(counts)} calls; a fixed-shape step needs the same number on every call after "
            "the first: use a step that is a multiple of the student's total time stride"
        )


def _layer_plan(name: str, module: nn.Module, calls: list, step_samples: int) -> LayerPlan:
    # a layer not reached on the first call has no record for it: it got 0 inputs then
    ins = [c[0] for c in calls]
    ins = [0] * (PROBE_CALLS - len(ins)) + ins
    _check_steady(f"layer {name!r}", ins, step_samples)
    n, shape = ins[-1], calls[-1][2]
    if isinstance(module, StreamRNN):
        return LayerPlan(name, "rnn", n, n - ins[0])
    outs = [c[1] for c in calls]
    outs = [0] * (PROBE_CALLS - len(outs)) + outs
    s = module.stride
    if n % s or any(o != n // s for o in outs[1:]):
        raise BadValueError(
            f"a stateful step of {step_samples} samples gives layer {name!r} (time stride {s}) "
            f"{n} inputs and {outs} outputs per call; use a step that is a multiple of the "
            "student's total time stride"
        )
    total_in, emitted = sum(ins), sum(outs)
    keep = total_in - n - (emitted - n // s) * s + module.left_pad
    return LayerPlan(name, "conv", n, n - ins[0], keep, tuple(shape[1:-1]))


class _Stateful(nn.Module):
    """A step layer: `state_in` / `first` are set before the model's forward, `state_out` read
    after it (tensors, so tracing follows them into the exported graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.state_in: list[torch.Tensor] = []
        self.state_out: list[torch.Tensor] = []
        self.first = torch.zeros(())

    def state_shapes(self) -> list[tuple[int, ...]]:
        return []

    def state_suffixes(self) -> list[str]:
        """The suffixes of the layer's state names, one per state shape."""
        count = len(self.state_shapes())
        return [""] if count == 1 else [".h", ".c"][:count]

    def _mask(self, x: torch.Tensor, phantom: int, time_axis: int) -> torch.Tensor:
        """Zero the first `phantom` steps of `x` on the first call (stream start)."""
        if phantom == 0:
            return x
        shape = [1] * x.dim()
        shape[time_axis] = x.shape[time_axis]
        index = torch.arange(x.shape[time_axis]).reshape(shape)
        keep = 1.0 - self.first * (index < phantom).float()
        return x * keep


class StepConv(_Stateful):
    """A Conv2d over (B, C, F, T) taking `n` new frames per call and carrying `keep` of them.
    With `channels_last` its state is held as (1, F, keep, C), the layout LiteRT runs
    convolutions in, so the converter's layout transposes around the state cancel."""

    def __init__(self, conv: nn.Conv2d, plan: LayerPlan, channels_last: bool = False) -> None:
        super().__init__()
        self.conv, self.plan, self.channels_last = conv, plan, channels_last
        self.stride = conv.stride[1]

    def state_shapes(self) -> list[tuple[int, ...]]:
        if self.plan.keep <= 0:
            return []
        (channels, height), keep = self.plan.shape, self.plan.keep
        return [(1, height, keep, channels) if self.channels_last else (1, channels, height, keep)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, phantom = self.plan.keep, self.plan.phantom
        if keep > 0 and self.channels_last:  # (1, F, T, C): mask, concatenate, slice on axis 2
            x = self._mask(x.permute(0, 2, 3, 1), phantom, 2)
            buf = torch.cat([self.state_in[0], x], dim=2)
            self.state_out = [buf[:, :, -keep:]]
            buf = buf.permute(0, 3, 1, 2)
        elif keep > 0:
            x = self._mask(x, phantom, -1)
            buf = torch.cat([self.state_in[0], x], dim=-1)
            self.state_out = [buf[..., -keep:]]
        else:
            buf, self.state_out = self._mask(x, phantom, -1)[..., max(0, -keep) :], []
        conv = self.conv
        out = F.conv2d(
            buf, conv.weight, conv.bias, (conv.stride[0], self.stride), (conv.padding[0], 0),
            conv.dilation, conv.groups,
        )  # fmt: skip
        return out[..., : self.plan.n // self.stride]


class StepRNN(_Stateful):
    """A batch-first unidirectional single-layer GRU or (projected) LSTM, unrolled over the `n`
    new steps of a call, its state carried; state held (zero) over the stream-start steps."""

    def __init__(self, rnn: nn.RNNBase, plan: LayerPlan) -> None:
        super().__init__()
        if rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first:
            raise UsageError("the stateful step takes single-layer unidirectional batch-first RNNs")
        self.rnn, self.plan = rnn, plan
        self.lstm = isinstance(rnn, nn.LSTM)
        self.out_size = getattr(rnn, "proj_size", 0) or rnn.hidden_size

    def state_shapes(self) -> list[tuple[int, ...]]:
        shapes = [(1, self.out_size)]
        return shapes + [(1, self.rnn.hidden_size)] if self.lstm else shapes

    def _cell(self, gi: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        r = self.rnn
        h = state[0]
        gh = torch.matmul(h, r.weight_hh_l0.t()) + r.bias_hh_l0
        if not self.lstm:
            ir, iz, inn = gi.chunk(3, -1)
            hr, hz, hn = gh.chunk(3, -1)
            reset, update = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            new = torch.tanh(inn + reset * hn)
            return [(1 - update) * new + update * h]
        i, f, g, o = (gi + gh).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if getattr(r, "proj_size", 0):
            h = torch.matmul(h, r.weight_hr_l0.t())
        return [h, c]

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        r = self.rnn
        gi = torch.matmul(x, r.weight_ih_l0.t()) + r.bias_ih_l0  # (B, n, G)
        state, outs = list(self.state_in), []
        for t in range(self.plan.n):
            new = self._cell(gi[:, t], state)
            if t < self.plan.phantom:  # before the stream start on the first call: hold
                new = [s + (1 - self.first) * (o - s) for s, o in zip(state, new)]
            state = new
            outs.append(state[0])
        self.state_out = state
        return torch.stack(outs, dim=1), state


class StepFrontend(_Stateful):
    """`step` new samples -> their (normalised) log-mel frames; carries the samples later
    frames overlap and, for normalize="running", the moving mean and variance per bin."""

    def __init__(self, frontend: Frontend, plan: StepPlan) -> None:
        super().__init__()
        self.frames = LogMelFrames(frontend)
        self.log_offset = float(frontend.log_offset)
        hop, n_fft = self.frames.hop, self.frames.n_fft
        self.pad = n_fft // 2
        self.carry = hop * plan.frame_phantom + self.pad
        self.n = plan.frames
        self.norm = StepNormalizer(frontend, plan.frame_phantom)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(1, self.carry), *self.norm.state_shapes()]

    def state_suffixes(self) -> list[str]:
        return ["", ".mean", ".var"][: len(self.state_shapes())]

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        head = samples[:, 1 : self.pad + 1].flip(-1)  # the centred STFT's reflect padding
        start = torch.cat([torch.zeros(1, self.carry - self.pad), head], dim=-1)
        carried = start * self.first + self.state_in[0] * (1 - self.first)
        buf = torch.cat([carried, samples], dim=-1)
        mel = self.frames.power_mel(buf)[..., : self.n]
        feats, norm_state = self.norm(torch.log(mel + self.log_offset), self.first,
                                      self.state_in[1:])  # fmt: skip
        self.state_out = [buf[:, -self.carry :], *norm_state]
        return feats


class StepModel(nn.Module):
    """One stateful step: (samples (1, S), *states) -> (logits (1, C), ready (1,), *states)."""

    def __init__(
        self, model: nn.Module, frontend: Frontend, plan: StepPlan, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.plan = plan
        self.net = copy.deepcopy(model).eval()
        self.layers: dict[str, _Stateful] = {"frontend": StepFrontend(frontend, plan)}
        for lp in plan.layers:
            module = self.net.get_submodule(lp.name)
            new = StepConv(module, lp, channels_last) if lp.kind == "conv" else StepRNN(module, lp)
            parent, _, attr = lp.name.rpartition(".")
            setattr(self.net.get_submodule(parent) if parent else self.net, attr, new)
            self.layers[lp.name] = new
        self.frontend = self.layers["frontend"]

    def state_specs(self, ring_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every state, in input order; all start at zero (float32), but
        `step` (int64)."""
        specs = []
        for name, layer in self.layers.items():
            shapes = layer.state_shapes()
            specs += [(f"{name}{sfx}", shape) for sfx, shape in zip(layer.state_suffixes(), shapes)]
        return specs + [("ring", ring_shape), ("ring_count", (1,)), ("step", (1,))]

    def forward(self, samples: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        step = states[-1]
        first = (step == 0).float().reshape(())
        i = 0
        for layer in self.layers.values():
            k = len(layer.state_shapes())
            layer.state_in, layer.first = list(states[i : i + k]), first
            i += k
        ring, count = states[i], states[i + 1]
        steps = self.net.forward_features(self.frontend(samples))
        axis, size = self.plan.axis, ring.shape[self.plan.axis]
        ring = torch.cat([ring, steps], dim=axis).narrow(axis, steps.shape[axis], size)
        count = torch.clamp(count + self.plan.steps - first * self.plan.steps_phantom, max=size)
        logits = self.net.forward_head(self._filled(ring, count))
        out = [s for layer in self.layers.values() for s in layer.state_out]
        return (logits, (count > 0).float(), *out, ring, count, step + 1)

    def _filled(self, ring: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """The ring with its not-yet-valid steps set to the mean of the valid ones, so the
        head's mean over the ring is the mean over the valid steps."""
        axis, size = self.plan.axis, ring.shape[self.plan.axis]
        if size == 1:
            return ring
        shape = [1] * ring.dim()
        shape[axis] = size
        valid = (torch.arange(size).reshape(shape) >= size - count).float()
        mean = (ring * valid).sum(dim=axis, keepdim=True) / torch.clamp(count, min=1.0)
        return ring * valid + mean * (1 - valid)


def build_step_model(
    model: nn.Module,
    frontend: Frontend,
    window_samples: int,
    step_samples: int,
    channels_last: bool = False,
) -> tuple[StepModel, list[tuple[str, tuple[int, ...]]]]:
    """The step model and its state specs (name, shape) for `model` streaming with `frontend`;
    `channels_last` holds the convolutions' states as (1, F, T, C) (for LiteRT)."""
    plan = plan_steps(model, frontend, window_samples, step_samples)
    step = StepModel(model, frontend, plan, channels_last).eval()
    with torch.inference_mode():
        frames = frontend.num_frames(window_samples)
        feats = model.eval().forward_features(torch.zeros(1, frontend.n_features, frames))
    shape = list(feats.shape)
    shape[plan.axis] = plan.window_steps
    return step, step.state_specs(tuple(shape))


def initial_states(specs: list[tuple[str, tuple[int, ...]]]) -> list[torch.Tensor]:
    """Zero states for the specs (`step` as int64)."""
    return [
        torch.zeros(shape, dtype=torch.int64 if name == "step" else torch.float32)
        for name, shape in specs
    ]


__all__ = [
    "LayerPlan",
    "StepConv",
    "StepModel",
    "StepPlan",
    "StepRNN",
    "build_step_model",
    "initial_states",
    "one_thread",
    "plan_steps",
]
