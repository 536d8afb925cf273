"""Training clips with history (`student.history_seconds`): the student hears audio before each
training clip and is scored on the clip alone, as a stateful stream runs it.

A stateful stream (docs/streaming.md) carries the student's convolution buffers or recurrent
state over the whole stream, so at every window the student hears what came before it. Trained
on clips alone, the student only ever heard zero padding there. `StreamHistory` puts the last
`seconds` of other clips of the batch (their features, rolled over the batch) in front of each
training clip; the clip logits are the student's own head on the clip's output steps only, as
the stream pools the steps of its window. The history is a whole number of the student's time
strides, so the clip's steps are the same steps as without it. Validation and test clips are
scored without history, as before.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from distill.data.frontend import Frontend
from distill.errors import BadValueError
from distill.students.frames import FrameGrid, causal_problem, frame_grid


def streaming_grid(student: nn.Module, frontend: Frontend, what: str) -> FrameGrid:
    """The frame grid of a student trained as a stateful stream runs it; `what` (the option
    that asks for it) starts the error naming a frontend that needs the whole clip or a student
    layer that hears the future."""
    if frontend.kind != "logmel" or frontend.normalize == "utterance":
        raise BadValueError(
            f"{what}, but frontend kind={frontend.kind} normalize={frontend.normalize} depends "
            "on the whole clip: use frontend.kind=logmel frontend.normalize=running (causal, as "
            "stateful streaming takes; none and frame are causal too but did not learn on the "
            "noisy 8 s recipe)"
        )
    grid = frame_grid(student)
    problem = causal_problem(student)
    if problem is not None:
        raise BadValueError(
            f"{what}, but in {type(student).__name__} {problem}: build the student with "
            "student.kwargs.causal=true"
        )
    return grid


class StreamHistory:
    """Prepends `frames` feature frames of other clips of the batch to each clip."""

    def __init__(self, student: nn.Module, frontend: Frontend, seconds: float) -> None:
        what = f"student.history_seconds={seconds:g} trains a student for stateful streaming"
        self.grid: FrameGrid = streaming_grid(student, frontend, what)
        stride = self.grid.stride
        per_second = frontend.sample_rate / frontend.hop_length
        self.frames = max(1, math.ceil(seconds * per_second / stride)) * stride
        self.seconds = self.frames / per_second

    def extend(self, feats: Tensor) -> Tensor:
        """(B, F, H + T): the last H frames of the clips before each one in the batch (rolled,
        as many as H needs), then the clip."""
        clips = math.ceil(self.frames / feats.shape[-1])
        before = torch.cat([feats.roll(k, dims=0) for k in range(clips, 0, -1)], dim=-1)
        return torch.cat([before[..., -self.frames :], feats], dim=-1)

    def clip_steps(self, maps: Tensor, clip_frames: int) -> Tensor:
        """The output steps of the clip alone in a feature map of the extended input."""
        axis = self.grid.axis % maps.dim()
        steps = self.grid.steps(clip_frames)
        return maps.narrow(axis, maps.shape[axis] - steps, steps)

    def clip_logits(self, student: nn.Module, feats: Tensor) -> Tensor:
        """The student's head on the clip's own steps of the history-extended clips (B, K)."""
        maps = student.forward_features(self.extend(feats))
        return student.forward_head(self.clip_steps(maps, feats.shape[-1]))


__all__ = ["StreamHistory", "streaming_grid"]
