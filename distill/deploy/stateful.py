"""Stateful streaming: each step computes only the new log-mel frames and the new model steps.

The log-mel frames come from a sample buffer (`StreamingLogMel`), the convolutions of the
student keep the last input frames they still need (`StreamConv`), the recurrent layers keep
their hidden state (`StreamRNN`). Exactness statement: after `t` seconds of audio, the runner's
model steps are those of the plain (non-streaming) student applied to the log-mel frames of all
audio heard so far (the frames whose STFT window is complete), and its posterior is the
student's own head on the last N of those steps (N: the steps of one window). This holds
exactly (up to float rounding) when every temporal convolution is causal or valid, which
`stateful_reason` checks; what cannot stream is named there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distill.data.frontend import (
    Frontend,
    normalize_frames,
    running_alpha,
    running_moments,
    running_standardise,
)
from distill.errors import UsageError
from distill.students.att_rnn import AttRNN
from distill.students.bc_resnet import BCResNet
from distill.students.causal import CausalConv2d
from distill.students.crnn import CRNN
from distill.students.ds_cnn import DSCNN
from distill.students.gru import GRUNet
from distill.students.lstm_p import LSTMP
from distill.students.tc_resnet import TCResNet
from distill.students.timm_cnn import TimmStudent

# Student classes that can stream, with the time axis of `forward_features` and the pooling.
POOL_MEAN = "average over the last N steps of the window (the student's global pooling)"
POOL_LAST = "last step; the hidden state is carried over the whole stream"
STATEFUL_STUDENTS: dict[type, tuple[int, str]] = {
    TCResNet: (-1, POOL_MEAN),
    DSCNN: (-1, POOL_MEAN),
    BCResNet: (-1, POOL_MEAN),
    GRUNet: (1, POOL_LAST),
    CRNN: (1, POOL_LAST),
    LSTMP: (1, POOL_LAST),
}
NOT_STATEFUL: dict[type, str] = {
    AttRNN: "its bidirectional GRU and its middle-frame attention query need the future of "
    "the window",
    TimmStudent: "timm backbones mix time with symmetric padding, strides and pooling layers "
    "that have no causal variant here",
}


def _conv_problem(name: str, module: nn.Module) -> str | None:
    if isinstance(module, CausalConv2d) or not isinstance(module, nn.Conv2d):
        return None
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        return f"conv {name!r} uses padding {module.padding!r} ({module.padding_mode})"
    if module.padding[1] > 0:
        return f"conv {name!r} pads time on both sides (SAME padding)"
    return None


def stateful_reason(model: nn.Module, frontend: Frontend) -> str | None:
    """Why `model` with `frontend` cannot stream statefully and exactly, or None when it can."""
    if frontend.kind != "logmel":
        return (
            f"frontend kind {frontend.kind!r}: the MFCC's top_db clamp depends on the whole "
            "clip; only log-mel frontends stream"
        )
    if frontend.normalize == "utterance":
        return (
            f"frontend normalize={frontend.normalize!r} standardises each window with its own "
            "mean and deviation; train with frontend.normalize=running (or frame, none) to "
            "stream statefully"
        )
    kind = type(model)
    if kind in NOT_STATEFUL:
        return f"{kind.__name__}: {NOT_STATEFUL[kind]}"
    if kind not in STATEFUL_STUDENTS:
        return f"{kind.__name__} is not a built-in student known to stream"
    for name, module in model.named_modules():
        problem = _conv_problem(name, module)
        if problem is None and isinstance(module, nn.ZeroPad2d) and any(module.padding[:2]):
            problem = f"padding {name!r} pads time on both sides (SAME padding)"
        if problem is None and isinstance(module, nn.RNNBase) and module.bidirectional:
            problem = f"recurrent layer {name!r} is bidirectional"
        if problem is None and isinstance(module, nn.RNNBase) and not module.batch_first:
            problem = f"recurrent layer {name!r} is not batch_first"
        if problem:
            return (
                f"{kind.__name__}: {problem}; build the student with causal=true "
                "(student.kwargs.causal=true) to stream statefully"
            )
    return None


class FrameNormalizer:
    """The frontend's normalisation of log-mel frames that arrive in pieces: "none", "frame"
    (each frame by itself) or "running" (state: the moving mean and mean square per bin,
    started at the stream's first frame), so the frames equal the whole stream's features."""

    def __init__(self, frontend: Frontend) -> None:
        if frontend.normalize == "utterance":
            raise UsageError("normalize='utterance' needs the whole clip; it cannot stream")
        self.kind = frontend.normalize
        self.alpha = running_alpha(frontend.frame_seconds, frontend.running_seconds)
        self.mean: torch.Tensor | None = None  # (F,), float64
        self.square: torch.Tensor | None = None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames (F, M) of the next M frames (F, M)."""
        if self.kind == "frame":
            return normalize_frames(frames[None])[0]
        if self.kind != "running" or frames.shape[-1] == 0:
            return frames
        mean, square = running_moments(frames, self.alpha, self.mean, self.square)
        self.mean, self.square = mean[:, -1], square[:, -1]
        return running_standardise(frames, mean, square)


class StreamingLogMel:
    """The frontend's log-mel frames (normalised as the frontend does), computed as samples
    arrive.

    The non-streaming frontend centres its STFT frames (reflect padding of n_fft // 2 samples
    at both ends). The start is reproduced exactly: frame 0 is emitted once n_fft // 2 + 1
    samples have arrived; frame i once its window is complete (i * hop + n_fft - n_fft // 2
    samples). A stream has no end, so the frames that the whole-clip frontend pads at the end
    are never emitted. Normalisation "running" starts at the stream's first frame, as the
    frontend applied to the whole stream at once does.
    """

    def __init__(self, frontend: Frontend) -> None:
        spec = frontend.mel.spectrogram
        if spec.pad or spec.normalized or not spec.center or spec.pad_mode != "reflect":
            raise UsageError("StreamingLogMel supports the project's centred, reflect-padded STFT")
        self.n_fft, self.hop, self.win = spec.n_fft, spec.hop_length, spec.win_length
        self.window, self.power = spec.window, spec.power
        self.fb = frontend.mel.mel_scale.fb
        self.log_offset = frontend.log_offset
        self.normalizer = FrameNormalizer(frontend)
        self.pad = self.n_fft // 2
        self._pending = torch.zeros(0)
        self._buf: torch.Tensor | None = None  # padded samples from index _start
        self._start = 0
        self._next = 0  # next frame to emit

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Append mono samples (N,); return the newly complete frames (F, M), M >= 0."""
        if self._buf is None:
            self._pending = torch.cat([self._pending, samples.float()])
            if self._pending.numel() <= self.pad:
                return torch.zeros(self.fb.shape[1], 0)
            head = self._pending[1 : self.pad + 1].flip(0)
            self._buf, self._pending = torch.cat([head, self._pending]), torch.zeros(0)
        else:
            self._buf = torch.cat([self._buf, samples.float()])
        end = self._start + self._buf.numel()
        last = (end - self.n_fft) // self.hop
        if last < self._next:
            return torch.zeros(self.fb.shape[1], 0)
        lo = self._next * self.hop - self._start
        seg = self._buf[lo : last * self.hop + self.n_fft - self._start]
        spec = torch.stft(
            seg[None],
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()
        spec = spec if self.power == 1.0 else spec.pow(self.power)
        mel = torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)
        self._next = last + 1
        keep = self._next * self.hop - self._start
        self._buf, self._start = self._buf[keep:], self._start + keep
        return self.normalizer(torch.log(mel + self.log_offset)[0])


@dataclass
class _Buffer:
    """Inputs kept by a streaming conv: `data` holds frames from index `start` (padding counted)."""

    data: torch.Tensor | None = None
    start: int = 0
    next: int = 0  # the next output step


class StreamConv(nn.Module):
    """A Conv2d over (B, C, F, T) fed new frames only; keeps the inputs that later outputs need.

    `left_pad` zeros stand before the first frame (the causal padding, or 0 for a valid
    conv); output j is emitted once input frame j * stride + receptive field - 1 - left_pad has
    arrived, exactly as the whole-sequence conv computes it.
    """

    def __init__(self, conv: nn.Conv2d, left_pad: int) -> None:
        super().__init__()
        self.conv = conv
        self.left_pad = left_pad
        self.stride = conv.stride[1]
        self.field = conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
        self.buffer = _Buffer()  # mutated in place (cheaper than Module attribute updates)

    def _empty(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        freq = (
            x.shape[2] + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1
        ) // conv.stride[0] + 1
        return x.new_zeros(x.shape[0], conv.out_channels, freq, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state, stride = self.buffer, self.stride
        if state.data is None:
            state.data = x.new_zeros(*x.shape[:-1], self.left_pad)
        buf = torch.cat([state.data, x], dim=-1) if x.shape[-1] else state.data
        end = state.start + buf.shape[-1]
        last = (end - self.field) // stride
        if last < state.next:
            state.data = buf
            return self._empty(x)
        lo = state.next * stride - state.start
        seg = buf[..., lo : last * stride + self.field - state.start]
        conv = self.conv
        out = F.conv2d(
            seg,
            conv.weight,
            conv.bias,
            (conv.stride[0], stride),
            (conv.padding[0], 0),
            conv.dilation,
            conv.groups,
        )
        state.next = last + 1
        keep = min(state.next * stride, end) - state.start
        state.data, state.start = buf[..., keep:], state.start + keep
        return out


class StreamRNN(nn.Module):
    """A batch-first, unidirectional GRU/LSTM whose state carries over from call to call."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.carry: dict[str, Any] = {"state": None}
        self.out_size = getattr(rnn, "proj_size", 0) or rnn.hidden_size

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], 0, self.out_size), self.carry["state"]
        out, self.carry["state"] = self.rnn(x, self.carry["state"])
        return out, self.carry["state"]


def streaming_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with its temporal convs and RNNs replaced by stateful versions."""
    net = copy.deepcopy(model).eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, CausalConv2d):
            new: nn.Module | None = StreamConv(module, module.causal_pad)
        elif isinstance(module, nn.Conv2d):  # valid in time (checked), or frame by frame
            new = StreamConv(module, 0)
        elif isinstance(module, nn.RNNBase):
            new = StreamRNN(module)
        else:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, attr, new)
    return net


class StatefulRunner:
    """Feeds samples through the streaming frontend and student; `posterior()` at any time."""

    def __init__(
        self, model: nn.Module, frontend: Frontend, window_samples: int, activation: str
    ) -> None:
        reason = stateful_reason(model, frontend)
        if reason is not None:
            raise UsageError(f"cannot stream statefully: {reason}")
        self.axis, self.pooling = STATEFUL_STUDENTS[type(model)]
        self.frontend = StreamingLogMel(frontend)
        self.net = streaming_copy(model)
        self.activation = activation
        was_training = model.training
        with torch.inference_mode():
            probe = model.eval().forward_features(
                torch.zeros(1, frontend.n_features, frontend.num_frames(window_samples))
            )
        model.train(was_training)
        self.window_steps = int(probe.shape[self.axis])
        self.ring: torch.Tensor | None = None

    @torch.inference_mode()
    def advance(self, samples: torch.Tensor) -> None:
        """Consume mono samples (N,)."""
        frames = self.frontend.push(samples)
        if frames.shape[-1] == 0:
            return
        steps = self.net.forward_features(frames[None])
        ring = steps if self.ring is None else torch.cat([self.ring, steps], dim=self.axis)
        size = ring.shape[self.axis]
        self.ring = ring.narrow(
            self.axis, max(0, size - self.window_steps), min(size, self.window_steps)
        )

    @torch.inference_mode()
    def posterior(self) -> torch.Tensor | None:
        """Class posteriors (C,) from the last window of steps; None before the first step."""
        if self.ring is None or self.ring.shape[self.axis] == 0:
            return None
        logits = self.net.forward_head(self.ring)[0]
        return logits.softmax(-1) if self.activation == "softmax" else logits.sigmoid()

    def describe(self) -> dict[str, Any]:
        """What the stateful mode computes, for the output record."""
        return {"pooling": self.pooling, "window_steps": self.window_steps}
