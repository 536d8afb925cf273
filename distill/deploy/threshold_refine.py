"""Threshold sweeps refined where an operating point falls between two swept thresholds.

A fixed grid of thresholds is too coarse where a wake-word detector operates: its posteriors
sit close to 1, and one grid step can take the false accepts of hours of negative audio from
several to none, so no swept threshold lands near 0.5 or 1 FA/h. `refine_sweep` bisects every
gap that holds an operating point: the false accepts cross an allowed count between its two
thresholds while the misses differ, so a threshold inside the gap may meet the count with fewer
misses. It stops when no such gap remains or the gap is narrower than `MIN_GAP`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

Point = TypeVar("Point")
Counts = tuple[Sequence[int], Sequence[int]]

#: Bisection stops at gaps narrower than this (float32 spacing just below 1 is 6e-8).
MIN_GAP = 1e-8
MAX_ROUNDS = 40


def _midpoint(lo: float, hi: float) -> float | None:
    """A threshold strictly between lo and hi; None when there is none worth trying."""
    if math.isinf(hi):  # the sweep's 'no detection' end: posteriors are at most 1
        if lo >= 1.0:
            return None
        hi = 1.0 + (1.0 - lo)  # so the first midpoint is 1, then bisection below it
    if not hi - lo > MIN_GAP:
        return None
    mid = 0.5 * (lo + hi)
    return mid if lo < mid < hi else None


def open_gaps(fa: np.ndarray, misses: np.ndarray, allowed: Sequence[float]) -> list[int]:
    """Indices i of the gaps (i, i+1) that may hide an operating point: for some scope (column)
    and allowed count A, fa[i] > A >= fa[i+1] while misses[i+1] > misses[i]."""
    lo_fa, hi_fa = fa[:-1], fa[1:]
    more_misses = misses[1:] > misses[:-1]
    hit = np.zeros(len(lo_fa), bool)
    for a in allowed:
        hit |= np.any((lo_fa > a) & (hi_fa <= a) & more_misses, axis=1)
    return [int(i) for i in np.flatnonzero(hit)]


def refine_sweep(
    thresholds: Sequence[float],
    points: Sequence[Point],
    evaluate: Callable[[float], Point],
    counts: Callable[[Point], Counts],
    allowed: Sequence[float],
    max_rounds: int = MAX_ROUNDS,
) -> tuple[np.ndarray, list[Point]]:
    """Bisect the gaps of an increasing threshold sweep that may hide an operating point.

    `points[i]` is `evaluate(thresholds[i])`; `counts(point)` gives (false accepts, misses),
    one of each per scope (e.g. pooled and per keyword); `allowed` are the false-accept counts
    of the targets (target FA/h x negative hours). Returns the merged sweep, still increasing.
    """
    ths = [float(t) for t in thresholds]
    pts = list(points)
    if len(ths) != len(pts):
        raise ValueError(f"{len(ths)} thresholds but {len(pts)} points")
    for _ in range(max_rounds):
        fa, misses = (np.asarray(x, np.float64) for x in zip(*map(counts, pts)))
        inserts = [_midpoint(ths[i], ths[i + 1]) for i in open_gaps(fa, misses, allowed)]
        inserts = [m for m in inserts if m is not None]
        if not inserts:
            break
        ths += inserts
        pts += [evaluate(m) for m in inserts]
        order = sorted(range(len(ths)), key=ths.__getitem__)
        ths, pts = [ths[j] for j in order], [pts[j] for j in order]
    return np.asarray(ths, np.float64), pts


__all__ = ["MAX_ROUNDS", "MIN_GAP", "open_gaps", "refine_sweep"]
