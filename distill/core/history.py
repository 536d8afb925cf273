"""Training clips with history (`student.history_seconds`): the student hears audio before each
training clip and is scored on the clip alone, as a stateful stream runs it.

A stateful stream (docs/streaming.md) carries the student's convolution buffers or recurrent
state over the whole stream, so at every window the student hears what came before it. Trained
on clips alone, the student only ever heard zero padding there. `StreamHistory` puts the last
`seconds` of other clips of the batch (their features, rolled over the batch) in front of each
training clip; with `source="fillers"` only clips of the non-keyword classes (`_unknown_`,
`_silence_`) are heard before a clip, as a stream mostly holds audio without a keyword before
one (a batch without such a clip takes its history from all its clips). The clip logits are the
student's own head on the clip's output steps only, as the stream pools the steps of its window.
The history is a whole number of the student's time strides, so the clip's steps are the same
steps as without it. Validation and test clips are scored without history, as before.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

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


HISTORY_SOURCES = ("batch", "fillers")


class StreamHistory:
    """Prepends `frames` feature frames of other clips of the batch to each clip."""

    def __init__(
        self,
        student: nn.Module,
        frontend: Frontend,
        seconds: float,
        source: str = "batch",
        filler_classes: Sequence[int] = (),
    ) -> None:
        what = f"student.history_seconds={seconds:g} trains a student for stateful streaming"
        if source not in HISTORY_SOURCES:
            raise BadValueError(
                f"student.history_from must be one of {HISTORY_SOURCES}, given {source!r}"
            )
        if source == "fillers" and not filler_classes:
            raise BadValueError(
                "student.history_from=fillers needs a non-keyword class (_unknown_ or "
                "_silence_) among the recipe's classes"
            )
        self.grid: FrameGrid = streaming_grid(student, frontend, what)
        stride = self.grid.stride
        per_second = frontend.sample_rate / frontend.hop_length
        self.frames = max(1, math.ceil(seconds * per_second / stride)) * stride
        self.seconds = self.frames / per_second
        self.source = source
        self.filler_classes = list(filler_classes)
        self.sources: Tensor | None = None  # set per batch by `for_batch`

    def for_batch(self, labels: Tensor) -> StreamHistory:
        """This history bound to a batch whose clip labels (B,) choose the clips heard before."""
        bound = copy.copy(self)
        bound.sources = None
        if self.source == "fillers":
            fillers = torch.tensor(self.filler_classes, device=labels.device)
            chosen = torch.isin(labels, fillers).nonzero().flatten()
            bound.sources = chosen if len(chosen) else None
        return bound

    def extend(self, feats: Tensor) -> Tensor:
        """(B, F, H + T): the last H frames of the clips before each one in the batch, taken
        as a loop (with `for_batch` of source fillers: of the filler clips before it), as many
        as H needs, then the clip."""
        batch = feats.shape[0]
        rows = torch.arange(batch, device=feats.device)
        sources = rows if self.sources is None else self.sources.to(feats.device)
        earlier = torch.searchsorted(sources, rows)  # sources before each clip in the batch
        clips = math.ceil(self.frames / feats.shape[-1])
        before = torch.cat(
            [feats[sources[(earlier - k) % len(sources)]] for k in range(clips, 0, -1)], dim=-1
        )
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


__all__ = ["HISTORY_SOURCES", "StreamHistory", "streaming_grid"]
