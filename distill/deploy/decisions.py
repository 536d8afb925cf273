"""Detections from per-hop posteriors: smoothing, per-class threshold, refractory period.

Rules (per class, independently), all recorded by `DecisionConfig.to_dict()`:
1. smoothing: the score of hop k is the mean of the raw posteriors of hops k - N + 1 .. k
   (causal moving average over N = `smooth_hops` hops; fewer at the stream start);
2. a hop is active when its smoothed score >= the class threshold;
3. a detection is a run of consecutive active hops; a run that starts at most
   `refractory_seconds` after the end of the class's previous detection is merged into it
   (so one keyword, or a flickering score, triggers once);
4. a detection's start is its first active hop's time, its end its last active hop's time
   (hop times: the end of the audio heard), its score the peak smoothed score.
Defaults: N = 3 hops, threshold 0.5, refractory 1.0 s, classes = every class whose name does
not start with "_" (the `_silence_` / `_unknown_` fillers of keyword spotting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from distill.errors import BadValueError

RULES = (
    "score = causal moving average of the posteriors over smooth_hops hops; a hop is active "
    "when score >= threshold; a detection is a run of consecutive active hops, and a run "
    "starting <= refractory_seconds after the previous detection of its class ends is merged "
    "into it; start/end = first/last active hop time (end of the audio heard), score = peak"
)


def moving_average(scores: np.ndarray, hops: int) -> np.ndarray:
    """Causal moving average over `hops` hops along axis 0 (fewer at the start)."""
    scores = np.asarray(scores, dtype=float)
    csum = np.concatenate([np.zeros((1, *scores.shape[1:])), np.cumsum(scores, axis=0)])
    index = np.arange(len(scores))
    lo = np.maximum(index - hops + 1, 0)
    count = (index + 1 - lo).reshape(-1, *([1] * (scores.ndim - 1)))
    return (csum[index + 1] - csum[lo]) / count


@dataclass(frozen=True)
class DecisionConfig:
    """Smoothing, thresholds and refractory period; `classes` None: names not starting '_'."""

    smooth_hops: int = 3
    threshold: float = 0.5
    class_thresholds: dict[str, float] = field(default_factory=dict)
    refractory_seconds: float = 1.0
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.smooth_hops, int) or self.smooth_hops < 1:
            raise BadValueError(f"smooth_hops must be an int >= 1, given {self.smooth_hops!r}")
        for name, value in [("threshold", self.threshold), *self.class_thresholds.items()]:
            if not 0.0 <= float(value) <= 1.0:
                raise BadValueError(f"threshold of {name!r} must be in [0, 1], given {value}")
        if not self.refractory_seconds >= 0:
            raise BadValueError(f"refractory_seconds must be >= 0, given {self.refractory_seconds}")

    def resolve(self, class_names: list[str]) -> dict[str, float]:
        """Threshold of every detected class; unknown class names are an error."""
        listed = ", ".join(class_names)
        asked = list(self.classes) if self.classes is not None else []
        for name in [*asked, *self.class_thresholds]:
            if name not in class_names:
                raise BadValueError(f"class {name!r} is not one of the model's classes: {listed}")
        chosen = asked or [c for c in class_names if not c.startswith("_")]
        if not chosen:
            raise BadValueError(f"no class to detect among the model's classes: {listed}")
        return {c: float(self.class_thresholds.get(c, self.threshold)) for c in chosen}

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        """Every choice, resolved for `class_names`, plus the rules in words."""
        return {
            "smooth_hops": self.smooth_hops,
            "thresholds": self.resolve(class_names),
            "refractory_seconds": self.refractory_seconds,
            "rules": RULES,
        }


@dataclass
class Detection:
    """One detection of `label` from `start` to `end` (seconds) with peak score `score`."""

    start: float
    end: float
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "class": self.label,
            "score": round(self.score, 6),
        }


class Decider:
    """Online decisions: `push` hops as they come (returns detections that just started),
    `finish` closes the open ones and returns every detection."""

    def __init__(self, class_names: list[str], config: DecisionConfig | None = None) -> None:
        self.config = config or DecisionConfig()
        self.class_names = list(class_names)
        thresholds = self.config.resolve(self.class_names)
        self._columns = [self.class_names.index(c) for c in thresholds]
        self._labels = list(thresholds)
        self._thresholds = np.array(list(thresholds.values()))
        self._history = np.zeros((0, len(self._columns)))
        self._open: list[Detection | None] = [None] * len(self._columns)
        self._active = [False] * len(self._columns)
        self.detections: list[Detection] = []

    def _smooth(self, scores: np.ndarray) -> np.ndarray:
        rows = np.concatenate([self._history, scores[:, self._columns]])
        n = self.config.smooth_hops
        smoothed = moving_average(rows, n)[len(self._history) :]
        self._history = rows[-(n - 1) :] if n > 1 else rows[:0]
        return smoothed

    def push(self, times: Iterable[float], scores: np.ndarray) -> list[Detection]:
        """Feed hops (times (H,), posteriors (H, C)); return the detections they started."""
        times = np.asarray(list(times), dtype=float)
        scores = np.asarray(scores, dtype=float).reshape(len(times), len(self.class_names))
        started = []
        for t, row in zip(times, self._smooth(scores)):
            for j, value in enumerate(row):
                started += self._step(j, float(t), float(value))
        return started

    def _step(self, j: int, t: float, value: float) -> list[Detection]:
        current, was_active = self._open[j], self._active[j]
        self._active[j] = value >= self._thresholds[j]
        if not self._active[j]:
            if current is not None and t - current.end > self.config.refractory_seconds:
                self.detections.append(current)  # no later run can merge into it
                self._open[j] = None
            return []
        if current is not None and (
            was_active or t - current.end <= self.config.refractory_seconds + 1e-9
        ):
            current.end, current.score = t, max(current.score, value)
            return []
        if current is not None:
            self.detections.append(current)
        self._open[j] = Detection(t, t, self._labels[j], value)
        return [self._open[j]]

    def finish(self) -> list[Detection]:
        """Close open detections; every detection, ordered by start time then class."""
        for j, current in enumerate(self._open):
            if current is not None:
                self.detections.append(current)
                self._open[j] = None
        return sorted(self.detections, key=lambda d: (d.start, self._labels.index(d.label)))


def decide(
    times: np.ndarray,
    scores: np.ndarray,
    class_names: list[str],
    config: DecisionConfig | None = None,
) -> list[Detection]:
    """Detections of a whole posterior track (see the module docstring for the rules)."""
    decider = Decider(class_names, config)
    decider.push(times, scores)
    return decider.finish()


def threshold_sweep(
    class_names: list[str], config: DecisionConfig | None = None
) -> Callable[[np.ndarray, np.ndarray, float], list[Detection]]:
    """These rules as a function of one threshold for all classes (for threshold sweeps):
    `decide(times, scores (H, len(class_names)), threshold)`; `.describe` records the rules."""
    base = config or DecisionConfig()

    def run(times: np.ndarray, scores: np.ndarray, threshold: float) -> list[Detection]:
        if threshold > 1.0:  # above every posterior
            return []
        swept = replace(base, threshold=max(float(threshold), 0.0), class_thresholds={})
        return decide(times, scores, class_names, swept)

    run.describe = {**base.to_dict(class_names), "thresholds": "swept"}  # type: ignore[attr-defined]
    return run
