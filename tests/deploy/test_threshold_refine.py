"""Refined threshold sweeps: operating points between the grid's thresholds near 1."""

from __future__ import annotations

import numpy as np
import pytest

from distill.deploy.stream_eval import Event, ScoredStream, evaluate_streams, sweep_decider
from distill.deploy.threshold_refine import MIN_GAP, open_gaps, refine_sweep


def near_one_stream() -> ScoredStream:
    """1 h of negatives (3604 s minus two 2 s keyword windows), every score between the default
    grid's 0.999 and 1 - 10^-3.5 (0.99968): false accepts at 0.9991, 0.9993, 0.9995; keywords
    hit at 0.9994 (yes) and 0.9998 (no)."""
    times = np.arange(1, int(3604 / 0.25) + 1) * 0.25
    post = np.zeros((len(times), 3))
    for t, k, p in [
        (100.5, 0, 0.9994),
        (200.5, 1, 0.9998),
        (1000.0, 0, 0.9991),
        (2000.0, 0, 0.9993),
        (3000.0, 1, 0.9995),
    ]:
        post[int(round(t / 0.25)) - 1, k] = p
    events = [Event("yes", 100.0, 101.5), Event("no", 200.0, 201.5)]
    return ScoredStream("s", 3604.0, times, post, events)


def test_refined_sweep_finds_the_operating_point_between_grid_thresholds() -> None:
    names = ["yes", "no", "_unknown_"]
    opts = {"decide": sweep_decider(names, smooth_hops=1)}
    refined = evaluate_streams([near_one_stream()], names, **opts)
    at1 = refined["at_fa_per_hour"]["1"]["pooled"]
    # at most one false accept: a threshold in (0.9993, 0.9994], where both keywords still hit
    assert at1["false_accepts"] == 1 and at1["frr"] == 0.0
    assert 0.9993 < at1["threshold"] <= 0.9994
    at01 = refined["at_fa_per_hour"]["0.1"]["pooled"]  # no false accept: in (0.9995, 0.9998]
    assert at01["false_accepts"] == 0 and at01["frr"] == 0.5
    assert 0.9995 < at01["threshold"] <= 0.9998
    assert "refined" in refined["rules"]["sweep"]
    ths = [t for t in refined["det"]["thresholds"] if t is not None]
    assert ths == sorted(ths) and len(ths) > 107  # the default grid plus the bisection
    # the grid alone jumps from 3 false accepts (0.999) to none (0.99968), losing 'yes'
    grid = evaluate_streams([near_one_stream()], names, refine=False, **opts)
    assert grid["at_fa_per_hour"]["1"]["pooled"]["frr"] == 0.5
    assert grid["at_fa_per_hour"]["1"]["pooled"]["false_accepts"] == 0
    assert grid["rules"]["sweep"] == "the given thresholds"
    # per keyword: 'no' has one false accept (0.9995) and one keyword above it (0.9998)
    per_no = refined["at_fa_per_hour"]["0.1"]["per_keyword"]["no"]
    assert per_no["frr"] == 0.0 and 0.9995 < per_no["threshold"] <= 0.9998


def test_given_thresholds_are_not_refined_unless_asked() -> None:
    names = ["yes", "no", "_unknown_"]
    opts = {"decide": sweep_decider(names, smooth_hops=1), "thresholds": [0.5, 0.9999]}
    given = evaluate_streams([near_one_stream()], names, **opts)
    assert given["det"]["thresholds"] == [0.5, 0.9999, None]
    asked = evaluate_streams([near_one_stream()], names, refine=True, **opts)
    assert len(asked["det"]["thresholds"]) > 3
    assert asked["at_fa_per_hour"]["1"]["pooled"]["frr"] == 0.0


def test_open_gaps_by_hand() -> None:
    # scopes as columns; allowed count 1
    fa = np.array([[5, 0], [3, 0], [0, 0]])
    misses = np.array([[0, 0], [0, 1], [1, 1]])
    # gap 0: fa 5 -> 3 never reaches 1; gap 1: 3 -> 0 crosses 1 and misses rise: open
    assert open_gaps(fa, misses, [1]) == [1]
    # the same crossing with equal misses: nothing to gain inside the gap
    assert open_gaps(fa, np.zeros_like(misses), [1]) == []
    assert open_gaps(fa, misses, [4]) == []  # 5 -> 3 crosses 4 but misses do not rise


def scores_counter(fa_scores: list[float], hit_scores: list[float]):
    """A toy sweep point: false accepts and misses at a threshold (score >= threshold fires)."""
    calls = []

    def evaluate(th: float) -> tuple[int, int]:
        calls.append(th)
        return sum(s >= th for s in fa_scores), sum(s < th for s in hit_scores)

    return evaluate, calls


def test_refine_stops_on_saturated_scores_and_narrow_gaps() -> None:
    # two false accepts at exactly 1.0 (saturated float32 softmax): no threshold separates them
    evaluate, calls = scores_counter([1.0, 1.0], [0.9, 1.0])
    ths = [0.5, 0.99, np.inf]
    pts = [evaluate(t) for t in ths]
    out, points = refine_sweep(ths, pts, evaluate, lambda p: ([p[0]], [p[1]]), allowed=[1])
    assert list(out) == [0.5, 0.99, 1.0, np.inf]  # 1.0 tried once; (1, inf) cannot be split
    assert points[2] == (2, 1)  # the hit at 0.9 is lost, the one at 1.0 kept
    # a false accept just above a hit: bisection stops at MIN_GAP
    evaluate, calls = scores_counter([0.7 + 1e-9, 0.8], [0.7])
    ths = [0.5, 0.9]
    pts = [evaluate(t) for t in ths]
    out, _ = refine_sweep(ths, pts, evaluate, lambda p: ([p[0]], [p[1]]), allowed=[1])
    assert np.all(np.diff(out) > 0) and len(calls) < 2 + 40
    assert np.min(np.diff(out)) >= MIN_GAP / 2


def test_refine_rejects_mismatched_points() -> None:
    with pytest.raises(ValueError, match="2 thresholds but 1 points"):
        refine_sweep([0.1, 0.2], [(0, 0)], lambda t: (0, 0), lambda p: ([0], [0]), [1])
