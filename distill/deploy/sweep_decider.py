"""The decision rules of a streaming detector, vectorised over hops for threshold sweeps."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from distill.deploy.decisions import Detection
from distill.errors import BadValueError

EPS = 1e-9  # seconds of slack in the window comparisons (hop times are sums of floats)
DEFAULT_REFRACTORY = 1.0

#: A decision function: (times (H,), posteriors (H, K), threshold) -> detections.
Decide = Callable[[np.ndarray, np.ndarray, float], list[Detection]]


def sweep_decider(
    class_names: Sequence[str], smooth_hops: int = 3, refractory: float = DEFAULT_REFRACTORY
) -> Decide:
    """The decision rules of `distill.deploy.decisions` (defaults included), vectorised over
    hops for threshold sweeps: per class, the causal mean of the last `smooth_hops` posteriors
    is active at >= threshold; a run of active hops is a detection, and a run starting at most
    `refractory` seconds after the end of the class's previous detection is merged into it.
    start/end: first/last active hop time; score: the peak smoothed score."""
    if refractory < 0 or smooth_hops < 1:
        raise BadValueError(
            f"refractory must be >= 0 s and smooth_hops >= 1, got {refractory}, {smooth_hops}"
        )
    names = list(class_names)

    def decide(times: np.ndarray, posteriors: np.ndarray, threshold: float) -> list[Detection]:
        times = np.asarray(times, np.float64)
        scores = _smooth(np.asarray(posteriors, np.float64), smooth_hops)
        out = []
        for k, name in enumerate(names):
            col = scores[:, k]
            edges = np.diff(np.concatenate([[0], (col >= threshold).astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
            if len(starts) == 0:
                continue
            bounds = np.column_stack([starts, ends + 1]).ravel()
            peaks = np.maximum.reduceat(np.append(col, -np.inf), bounds)[::2]
            cur = [starts[0], ends[0], peaks[0]]
            for a, b, peak in zip(starts[1:], ends[1:], peaks[1:]):
                if times[a] - times[cur[1]] <= refractory + EPS:
                    cur[1], cur[2] = b, max(cur[2], peak)
                    continue
                out.append(
                    Detection(float(times[cur[0]]), float(times[cur[1]]), name, float(cur[2]))
                )
                cur = [a, b, peak]
            out.append(Detection(float(times[cur[0]]), float(times[cur[1]]), name, float(cur[2])))
        return sorted(out, key=lambda d: (d.start, d.label))

    decide.describe = {  # type: ignore[attr-defined]
        "rule": "the rules of distill.deploy.decisions, vectorised (stream_eval.sweep_decider)",
        "smooth_hops": smooth_hops,
        "refractory_seconds": refractory,
        "thresholds": "swept",
    }
    return decide


def _smooth(scores: np.ndarray, n: int) -> np.ndarray:
    """Causal moving average over the last `n` hops (fewer at the start)."""
    if n == 1 or len(scores) == 0:
        return scores
    c = np.cumsum(np.vstack([np.zeros((1, scores.shape[1])), scores]), axis=0)
    i = np.arange(1, len(scores) + 1)
    lo = np.maximum(0, i - n)
    return (c[i] - c[lo]) / (i - lo)[:, None]


def default_thresholds() -> np.ndarray:
    """0.01 .. 0.99 in steps of 0.01, then 1 - 10^-k for k = 2.5 .. 6 (wake-word operating
    points sit close to 1), then +inf (no detection)."""
    fine = 1 - 10.0 ** -np.arange(2.5, 6.01, 0.5)
    return np.concatenate([np.round(np.arange(1, 100) / 100, 2), fine, [np.inf]])


__all__ = ["DEFAULT_REFRACTORY", "EPS", "Decide", "default_thresholds", "sweep_decider"]
