"""The student's per-step outputs for per-step loss terms (`losses.timed`): logits at every
output step as the streaming runtime pools them, and the time each step has heard up to.

Step t's time is the end of the audio it has heard: its last input frame i (see
`distill.students.frames.FrameGrid`) is complete once i * hop + n_fft - n_fft // 2 samples
(frame 0: n_fft // 2 + 1) have arrived, as `distill.deploy.stateful.StreamingLogMel` emits the
centred STFT's frames; capped at the clip's end. So the stateful runtime gives step t's
posterior at exactly that sample (tests/core/test_timed_frames.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.core.history import StreamHistory, streaming_grid
from distill.data.frontend import Frontend
from distill.errors import BadValueError, UsageError
from distill.students.frames import FrameGrid, frame_logits
from distill.students.tap import FeatureTap


def step_seconds(
    grid: FrameGrid, steps: int, hop: int, n_fft: int, sample_rate: int, clip_seconds: float
) -> Tensor:
    """The end (seconds from the clip start) of the audio each of `steps` steps has heard."""
    samples = grid.last_frames(steps).double() * hop + (n_fft - n_fft // 2)
    samples = samples.clamp_min(n_fft // 2 + 1)  # frame 0 is reflect-padded from n_fft // 2 + 1
    return (samples / sample_rate).clamp_max(clip_seconds).float()


class FrameOutputs:
    """How a DistillModule's student gives per-step logits: the plain `student(feats)` runs (its
    forward hooks fire as usual), a forward hook on the submodule that outputs the feature map
    keeps it, and the student's own `forward_head` is applied per step (no parameters)."""

    def __init__(
        self, student: nn.Module, frontend: Frontend, clip_seconds: float, window_seconds: float
    ) -> None:
        name = type(student).__name__
        self.grid = streaming_grid(student, frontend, "losses.timed trains causal per-step outputs")
        self.clip_seconds = clip_seconds
        self.hop, self.n_fft = frontend.hop_length, int(frontend.mel.n_fft)
        self.sample_rate = sr = frontend.sample_rate
        self.tap: FeatureTap | None = FeatureTap(student, self.grid.module, "BCT")
        frames = frontend.num_frames(int(round(clip_seconds * sr)))
        probed = self._probe_steps(student, frontend.n_features, frames)
        if probed != self.grid.steps(frames):
            raise BadValueError(
                f"{name} gives {probed} steps for {frames} frames, its frame grid "
                f"{self.grid} {self.grid.steps(frames)}: per-step times would be wrong"
            )
        self.window: int | None = None
        self.window_seconds = float(window_seconds) if window_seconds > 0 else None
        if window_seconds > 0:
            if self.grid.pooling != "mean":
                raise BadValueError(
                    f"losses.timed.window_seconds={window_seconds}: {name} reads its last step "
                    "(its state carries the whole stream), it pools no window; leave it at 0"
                )
            window_frames = frontend.num_frames(int(round(window_seconds * sr)))
            self.window = self._probe_steps(student, frontend.n_features, window_frames)

    def _probe_steps(self, student: nn.Module, n_features: int, frames: int) -> int:
        """Output steps of the student on `frames` frames (eval mode, no gradients); checks
        that the hooked submodule gives `forward_features`' output."""
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                x = torch.randn(1, n_features, frames, generator=torch.Generator().manual_seed(0))
                student(x)
                maps = student.forward_features(x)
                hooked = self.tap.output
        finally:
            student.train(was_training)
            self.tap.clear()
        if hooked.shape != maps.shape or not torch.allclose(hooked, maps):
            raise BadValueError(
                f"{type(student).__name__}.{self.grid.module} does not output the feature map "
                "of forward_features: its per-step outputs cannot be read"
            )
        return int(maps.shape[self.grid.axis])

    def __call__(
        self, student: nn.Module, feats: Tensor, history: StreamHistory | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(clip logits (B, K), per-step logits (B, T', K), step times (T',)) for (B, F, T);
        with `history`, of the clip's steps after the history, pooled as a stream pools them."""
        if self.tap is None:
            raise UsageError("the per-step outputs were detached from the student")
        if not hasattr(student, "forward_head"):
            raise UsageError(
                "losses.timed needs the student's forward_head, which "
                f"{type(student).__name__} does not have (QAT's exported graph has not): run "
                "QAT with losses.timed.weight=0"
            )
        logits = student(feats if history is None else history.extend(feats))
        maps = self.tap.output
        self.tap.clear()
        window = self.window
        if history is not None:
            clip_maps = history.clip_steps(maps, feats.shape[-1])
            logits = student.forward_head(clip_maps)  # the clip's steps: the stream's window
            window = window or clip_maps.shape[self.grid.axis]
        frames = frame_logits(student, maps, self.grid, window)
        if history is not None:
            frames = frames[:, -self.grid.steps(feats.shape[-1]) :]
        times = step_seconds(
            self.grid, frames.shape[1], self.hop, self.n_fft, self.sample_rate, self.clip_seconds
        )
        return logits, frames, times.to(frames.device)

    def remove(self) -> None:
        """Take the hook off the student (safe to call twice)."""
        if self.tap is not None:
            self.tap.remove()
        self.tap = None


__all__ = ["FrameOutputs", "step_seconds"]
