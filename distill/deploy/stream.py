"""Streaming runtime: audio in chunks of any size, class posteriors out every hop.

Two modes (`StreamConfig.mode`):
- "sliding": at every hop the last `window` seconds of audio (zeros before the stream start
  when `pad_start`) go through the model's own frontend and student, exactly as one clip of
  that length would; every model can do this.
- "stateful": each hop computes only the new log-mel frames and model steps
  (`distill.deploy.stateful`); for causal students with a log-mel frontend normalised
  "running", "frame" or not at all (not "utterance": it needs the whole window).
- "auto" (default): stateful where the model allows it, else sliding, with the reason recorded.

Hop k ends at sample k * hop (time k * hop / sample_rate, the end of the audio heard); a partial
hop at the end of a stream is not scored. `Posteriors.info` records every choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from distill.errors import BadValueError, UsageError

MODES = ("auto", "sliding", "stateful")


@dataclass(frozen=True)
class StreamConfig:
    """How posteriors are computed: mode, hop and window (None: the model's training window)."""

    mode: str = "auto"
    hop_seconds: float = 0.1
    window_seconds: float | None = None
    pad_start: bool = True  # sliding: score from the first hop, zeros before the stream start
    batch_size: int = 32  # sliding: windows scored together

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadValueError(f"stream mode {self.mode!r} unknown; expected one of {MODES}")
        if not self.hop_seconds > 0:
            raise BadValueError(f"hop must be > 0 seconds, given {self.hop_seconds}")
        if self.window_seconds is not None and not self.window_seconds > 0:
            raise BadValueError(f"window must be > 0 seconds, given {self.window_seconds}")
        if self.batch_size < 1:
            raise BadValueError(f"batch_size must be >= 1, given {self.batch_size}")


class StatefulRunnerLike(Protocol):
    """What a stateful backend offers (see distill.deploy.stateful.StatefulRunner)."""

    def advance(self, samples: torch.Tensor) -> None: ...
    def posterior(self) -> torch.Tensor | None: ...
    def describe(self) -> dict[str, Any]: ...


class DetectorModel(Protocol):
    """A model backend the runtime can drive (the PyTorch student; exported ONNX models in
    distill.deploy.onnx_detector). Optional: `check_window(window_samples)` and
    `check_hop(hop_samples)` raising BadValueError for a window or hop it cannot take, and
    `sliding_reason()`: why it cannot score a sliding window (None or absent: it can)."""

    class_names: list[str]
    sample_rate: int
    window_seconds: float  # the training window

    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Posteriors (B, C) of waveform windows (B, N) at `sample_rate`."""
        ...

    def stateful_reason(self) -> str | None:
        """Why this model cannot stream statefully, or None when it can."""
        ...

    def open_stateful(self, window_samples: int) -> StatefulRunnerLike:
        """A fresh stateful runner (only called when `stateful_reason()` is None)."""
        ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Posteriors:
    """Per-hop posteriors: `times` (H,) in seconds (end of the audio heard), `scores` (H, C)."""

    times: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _samples(seconds: float, sample_rate: int, what: str) -> int:
    count = int(round(seconds * sample_rate))
    if count < 1:
        raise BadValueError(f"{what} {seconds} s is under one sample at {sample_rate} Hz")
    return count


class Streamer:
    """Push chunks of mono audio at the model's sample rate; get (times, scores) of new hops."""

    def __init__(self, model: DetectorModel, config: StreamConfig | None = None) -> None:
        config = config or StreamConfig()
        self.model, self.config = model, config
        self.sample_rate = int(model.sample_rate)
        self.hop = _samples(config.hop_seconds, self.sample_rate, "hop")
        window_seconds = config.window_seconds or model.window_seconds
        self.window = _samples(window_seconds, self.sample_rate, "window")
        check = getattr(model, "check_window", None)
        if check is not None:
            check(self.window)
        reason = model.stateful_reason()
        if config.mode == "stateful" and reason is not None:
            raise UsageError(f"cannot stream statefully: {reason}")
        self.mode = "stateful" if config.mode != "sliding" and reason is None else "sliding"
        no_sliding = getattr(model, "sliding_reason", lambda: None)()
        if self.mode == "sliding" and no_sliding:
            raise UsageError(f"cannot score a sliding window: {no_sliding}")
        check_hop = getattr(model, "check_hop", None)
        if check_hop is not None and self.mode == "stateful":
            check_hop(self.hop)
        self.samples = 0
        self._runner = model.open_stateful(self.window) if self.mode == "stateful" else None
        start = self.window if config.pad_start else 0
        self._buf, self._buf_start = torch.zeros(start), -start
        self.info: dict[str, Any] = {
            **asdict(config),
            "mode": self.mode,
            "requested_mode": config.mode,
            "stateful_unavailable": reason,
            "hop_seconds": self.hop / self.sample_rate,
            "window_seconds": self.window / self.sample_rate,
            "sample_rate": self.sample_rate,
            "time_convention": "a hop's time is the end of the audio heard when it is scored",
            **(self._runner.describe() if self._runner is not None else {}),
        }
        if self.mode == "sliding":
            self.info["pooling"] = "the model on each window, as on one training clip"

    def push(self, chunk: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Consume a chunk (N,); return the times (H,) and posteriors (H, C) of completed hops."""
        a = np.asarray(chunk, dtype=np.float32).reshape(-1)
        x = torch.as_tensor(a)
        if not np.isfinite(a).all():  # in numpy: cheaper per small chunk than torch.isfinite
            raise BadValueError(
                f"audio chunk at {self.samples / self.sample_rate:.3f} s holds NaN/inf samples"
            )
        if self.mode == "stateful":
            return self._push_stateful(x)
        return self._push_sliding(x)

    def _result(
        self, times: list[float], rows: list[torch.Tensor]
    ) -> tuple[np.ndarray, np.ndarray]:
        classes = len(self.model.class_names)
        if not rows:
            return np.zeros(0), np.zeros((0, classes), dtype=np.float32)
        return np.asarray(times), torch.stack(rows).float().numpy()

    def _push_stateful(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        times, rows, pos = [], [], 0
        while pos < x.numel():
            take = min(self.hop - self.samples % self.hop, x.numel() - pos)
            self._runner.advance(x[pos : pos + take])
            self.samples, pos = self.samples + take, pos + take
            if self.samples % self.hop == 0:
                posterior = self._runner.posterior()
                if posterior is not None:
                    times.append(self.samples / self.sample_rate)
                    rows.append(posterior)
        return self._result(times, rows)

    def _push_sliding(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        self._buf = torch.cat([self._buf, x])
        end = self.samples + x.numel()
        times, windows = [], []
        for k in range(self.samples // self.hop + 1, end // self.hop + 1):
            stop = k * self.hop
            if stop - self.window >= self._buf_start:
                lo = stop - self.window - self._buf_start
                windows.append(self._buf[lo : lo + self.window])
                times.append(stop / self.sample_rate)
        self.samples = end
        keep = max(0, end - self.window - self._buf_start)
        self._buf, self._buf_start = self._buf[keep:], self._buf_start + keep
        rows = []
        for lo in range(0, len(windows), self.config.batch_size):
            batch = torch.stack(windows[lo : lo + self.config.batch_size])
            rows.extend(self.model.score_windows(batch))
        return self._result(times, rows)


def stream_posteriors(
    model: DetectorModel,
    chunks: Iterable[torch.Tensor | np.ndarray],
    config: StreamConfig | None = None,
) -> Posteriors:
    """Run the runtime over an iterator of mono chunks at the model's sample rate."""
    streamer = Streamer(model, config)
    times, scores = [np.zeros(0)], [np.zeros((0, len(model.class_names)), dtype=np.float32)]
    for chunk in chunks:
        t, s = streamer.push(chunk)
        times.append(t)
        scores.append(s)
    info = {**streamer.info, "seconds": streamer.samples / streamer.sample_rate}
    return Posteriors(np.concatenate(times), np.concatenate(scores), list(model.class_names), info)


def waveform_posteriors(
    model: DetectorModel,
    waveform: torch.Tensor | np.ndarray,
    config: StreamConfig | None = None,
    chunk_seconds: float = 10.0,
) -> Posteriors:
    """Run the runtime over a whole mono waveform (N,), fed in chunks of `chunk_seconds`."""
    wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
    step = _samples(chunk_seconds, int(model.sample_rate), "chunk")
    chunks = (wave[i : i + step] for i in range(0, wave.numel(), step))
    return stream_posteriors(model, chunks, config)


def unseen_history_note(model_info: dict[str, Any], stream_info: dict[str, Any]) -> str | None:
    """A one-line warning when a stateful stream pools windows no shorter than the clips the
    student was trained on: in training its convolutions (or its recurrent state) saw only
    zero padding before the window, and the stream gives them the audio that came before; None
    otherwise (sliding window, longer training clips, training with `student.history_seconds`,
    or an unknown clip length)."""
    clip = model_info.get("training_clip_seconds")
    if stream_info.get("mode") != "stateful" or clip is None:
        return None
    if model_info.get("training_history_seconds"):  # trained hearing audio before its clips
        return None
    window = float(stream_info["window_seconds"])
    if window < float(clip) - 1e-6:
        return None
    return (
        f"note: stateful stream over {window:g} s windows of a student trained on {clip:g} s "
        "clips: in training it never heard audio before a window, here it hears what came "
        "before; such students can detect far worse statefully than on the sliding window "
        "(docs/streaming.md, 'History the student never heard'): compare with --mode sliding"
    )


def check_window_fits(model: Any, window_samples: int, what: str) -> None:
    """Refuse a window that `model` (a detector backend) cannot score: too short for its
    frontend or student. `what` names the model in the message."""
    try:
        model.score_windows(torch.zeros(1, window_samples))
    except Exception as err:  # noqa: BLE001  any failure means the window does not fit
        raise BadValueError(
            f"window of {window_samples / model.sample_rate:g} s is too short for {what}: "
            f"{' '.join(str(err).split())[:200]}"
        ) from None
