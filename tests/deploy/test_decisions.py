"""Decisions on hand-made posteriors, checked against detections computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from distill.deploy.decisions import (
    Decider,
    DecisionConfig,
    decide,
    moving_average,
    threshold_sweep,
)
from distill.errors import BadValueError

NAMES = ["_silence_", "yes", "no"]
TIMES = np.round(np.arange(1, 11) * 0.1, 10)  # 0.1 .. 1.0


def _scores(yes: list[float], no: list[float] | None = None) -> np.ndarray:
    no = no if no is not None else [0.0] * len(yes)
    rest = [1.0 - a - b for a, b in zip(yes, no)]
    return np.array([rest, yes, no]).T


def _tuples(dets) -> list[tuple]:
    return [(round(d.start, 6), round(d.end, 6), d.label, round(d.score, 6)) for d in dets]


def test_moving_average_is_causal_and_shorter_at_the_start() -> None:
    x = np.array([[0.0], [0.0], [0.9], [0.9], [0.9], [0.0]])
    expected = [0.0, 0.0, 0.3, 0.6, 0.9, 0.6]
    np.testing.assert_allclose(moving_average(x, 3)[:, 0], expected)
    np.testing.assert_allclose(moving_average(np.array([[1.0], [0.0]]), 3)[:, 0], [1.0, 0.5])


def test_smoothing_and_threshold() -> None:
    # yes smoothed over 3 hops: 0, 0, .3, .6, .9, .6, .3, 0, 0, 0 -> active at 0.4, 0.5, 0.6
    yes = [0, 0, 0.9, 0.9, 0.9, 0, 0, 0, 0, 0]
    dets = decide(TIMES, _scores(yes), NAMES, DecisionConfig(smooth_hops=3, threshold=0.5))
    assert _tuples(dets) == [(0.4, 0.6, "yes", 0.9)]
    # without smoothing: raw 0.9 at 0.3 .. 0.5
    dets = decide(TIMES, _scores(yes), NAMES, DecisionConfig(smooth_hops=1))
    assert _tuples(dets) == [(0.3, 0.5, "yes", 0.9)]


def test_refractory_merges_close_runs_only() -> None:
    # runs of yes >= 0.5: [0.1, 0.2], [0.5], [0.7, 0.8]; refractory 0.25 s:
    # 0.5 - 0.2 = 0.3 > 0.25 -> new detection; 0.7 - 0.5 = 0.2 <= 0.25 -> merged into it
    yes = [0.6, 0.8, 0.1, 0.2, 0.7, 0.1, 0.55, 0.9, 0.0, 0.0]
    config = DecisionConfig(smooth_hops=1, refractory_seconds=0.25)
    assert _tuples(decide(TIMES, _scores(yes), NAMES, config)) == [
        (0.1, 0.2, "yes", 0.8),
        (0.5, 0.8, "yes", 0.9),
    ]
    # refractory 0: every run is its own detection; consecutive hops stay one run
    config = DecisionConfig(smooth_hops=1, refractory_seconds=0.0)
    assert _tuples(decide(TIMES, _scores(yes), NAMES, config)) == [
        (0.1, 0.2, "yes", 0.8),
        (0.5, 0.5, "yes", 0.7),
        (0.7, 0.8, "yes", 0.9),
    ]
    # a long refractory merges everything
    config = DecisionConfig(smooth_hops=1, refractory_seconds=5.0)
    assert _tuples(decide(TIMES, _scores(yes), NAMES, config)) == [(0.1, 0.8, "yes", 0.9)]


def test_per_class_thresholds_and_default_classes() -> None:
    yes = [0, 0.6, 0, 0, 0, 0, 0, 0, 0, 0]
    no = [0, 0, 0, 0, 0.4, 0.4, 0, 0, 0, 0]
    scores = _scores(yes, no)  # _silence_ is >= 0.4 everywhere but is never detected
    config = DecisionConfig(smooth_hops=1, class_thresholds={"yes": 0.7, "no": 0.3})
    assert _tuples(decide(TIMES, scores, NAMES, config)) == [(0.5, 0.6, "no", 0.4)]
    config = DecisionConfig(smooth_hops=1, threshold=0.35)
    assert _tuples(decide(TIMES, scores, NAMES, config)) == [
        (0.2, 0.2, "yes", 0.6),
        (0.5, 0.6, "no", 0.4),
    ]
    config = DecisionConfig(smooth_hops=1, classes=("_silence_",))
    assert _tuples(decide(TIMES, scores, NAMES, config)) == [(0.1, 1.0, "_silence_", 1.0)]


def test_online_pushes_equal_one_pass() -> None:
    rng = np.random.default_rng(0)
    times = np.round(np.arange(1, 201) * 0.1, 10)
    yes = (rng.random(200) > 0.7) * rng.random(200)
    no = (rng.random(200) > 0.8) * rng.random(200) * (1 - yes)
    scores = _scores(list(yes), list(no))
    config = DecisionConfig(smooth_hops=2, threshold=0.3, refractory_seconds=0.35)
    whole = decide(times, scores, NAMES, config)
    decider, started = Decider(NAMES, config), []
    for lo in range(0, 200, 7):
        new = decider.push(times[lo : lo + 7], scores[lo : lo + 7])
        started += [(d.start, d.label) for d in new]
    pieces = decider.finish()
    assert len(whole) > 5
    assert _tuples(pieces) == _tuples(whole)
    assert sorted(started) == sorted((d.start, d.label) for d in whole)


def test_choices_are_recorded_and_bad_values_refused() -> None:
    config = DecisionConfig(smooth_hops=4, threshold=0.6, class_thresholds={"no": 0.8})
    record = config.to_dict(NAMES)
    assert record["smooth_hops"] == 4 and record["refractory_seconds"] == 1.0
    assert record["thresholds"] == {"yes": 0.6, "no": 0.8}
    assert "refractory" in record["rules"]
    with pytest.raises(BadValueError, match=r"'maybe' is not one of the model's classes: _sil"):
        DecisionConfig(classes=("maybe",)).resolve(NAMES)
    with pytest.raises(BadValueError, match="threshold"):
        DecisionConfig(threshold=1.5)
    with pytest.raises(BadValueError, match="smooth_hops"):
        DecisionConfig(smooth_hops=0)
    with pytest.raises(BadValueError, match="refractory"):
        DecisionConfig(refractory_seconds=-1)


def test_threshold_sweep_applies_one_threshold() -> None:
    yes = [0, 0.6, 0, 0, 0, 0, 0, 0, 0, 0]
    no = [0, 0, 0, 0, 0.4, 0.4, 0, 0, 0, 0]
    run = threshold_sweep(NAMES, DecisionConfig(smooth_hops=1, class_thresholds={"yes": 0.9}))
    assert [(d.label, d.start) for d in run(TIMES, _scores(yes, no), 0.35)] == [
        ("yes", 0.2),
        ("no", 0.5),
    ]
    assert run(TIMES, _scores(yes, no), 1.01) == []
    assert run.describe["thresholds"] == "swept"
