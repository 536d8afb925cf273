"""The wake-word metric's counting rules and DET operating points on hand-made posteriors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distill.deploy.decisions import Detection
from distill.deploy.stream_eval import (
    Event,
    ScoredStream,
    evaluate_detections,
    evaluate_streams,
    match_detections,
    negative_seconds,
    sweep_decider,
)
from distill.deploy.stream_report import write_result
from distill.errors import BadValueError


def det(cls: str, start: float) -> Detection:
    return Detection(start, start, cls, 1.0)


def counts(m) -> tuple[int, int, int]:
    return len(m.hits), len(m.misses), len(m.false_accepts)


def test_hit_miss_and_false_accepts_by_hand() -> None:
    events = [Event("yes", 1.0, 1.5), Event("no", 5.0, 5.6)]
    m = match_detections([det("yes", 1.2), det("yes", 3.0), det("no", 9.0)], events)
    assert counts(m) == (1, 1, 2)
    assert m.hits[0][0] == events[0] and m.misses == [events[1]]
    assert [d.start for d in m.false_accepts] == [3.0, 9.0]


def test_window_boundaries_are_closed() -> None:
    events = [Event("yes", 1.0, 1.5)]
    # 20 hops of 0.1 s add up to 2.0000000000000004: still exactly at offset + tolerance
    assert counts(match_detections([det("yes", sum([0.1] * 20))], events, 0.5)) == (1, 0, 0)
    # and 0.6 * 3 + 0.2 = 1.9999999999999998 at an onset of 2.0: exactly at the onset
    late = [Event("yes", 2.0, 2.5)]
    assert counts(match_detections([det("yes", 0.6 * 3 + 0.2)], late, 0.5)) == (1, 0, 0)
    assert counts(match_detections([det("yes", 2.001)], events, tolerance=0.5)) == (0, 1, 1)
    assert counts(match_detections([det("yes", 1.0)], events, tolerance=0.5)) == (1, 0, 0)
    assert counts(match_detections([det("yes", 0.999)], events, tolerance=0.5)) == (0, 1, 1)
    # the tolerance is configurable
    assert counts(match_detections([det("yes", 1.8)], events, tolerance=0.2)) == (0, 1, 1)
    assert counts(match_detections([det("yes", 1.7)], events, tolerance=0.2)) == (1, 0, 0)


def test_a_keyword_is_hit_once_and_a_wrong_class_is_a_false_accept() -> None:
    events = [Event("yes", 1.0, 1.5)]
    m = match_detections([det("yes", 1.6), det("yes", 1.2)], events)
    assert counts(m) == (1, 0, 1)
    assert m.hits[0][1].start == 1.2 and m.false_accepts[0].start == 1.6  # time order decides
    assert counts(match_detections([det("no", 1.2)], events)) == (0, 1, 1)


def test_overlapping_windows_take_the_one_ending_first() -> None:
    events = [Event("yes", 0.0, 3.0), Event("yes", 1.0, 1.5)]  # windows [0, 3.5] and [1, 2]
    m = match_detections([det("yes", 1.5), det("yes", 3.0)], events, tolerance=0.5)
    assert counts(m) == (2, 0, 0)
    assert {(e.onset, d.start) for e, d in m.hits} == {(1.0, 1.5), (0.0, 3.0)}


def test_detections_as_records_from_detect() -> None:
    rows = [{"file": "a.wav", "start": 1.2, "end": 1.4, "class": "yes", "score": 0.9}]
    assert counts(match_detections(rows, [Event("yes", 1.0, 1.5)])) == (1, 0, 0)
    with pytest.raises(BadValueError, match="class"):
        match_detections([{"start": 1.0}], [])


def test_negative_duration_by_hand() -> None:
    # windows [1, 2] and [1.8, 2.7] overlap: union 1.7 s; [9.8, 10.5] is clipped to 0.2 s
    events = [Event("a", 1.0, 1.5), Event("b", 1.8, 2.2), Event("a", 9.8, 10.0)]
    assert negative_seconds(10.0, events, 0.5) == pytest.approx(10.0 - 1.7 - 0.2)
    assert negative_seconds(10.0, [], 0.5) == 10.0


def test_zero_negative_duration_is_refused() -> None:
    stream = ScoredStream("s", 2.0, np.array([1.0]), np.zeros((1, 2)), [Event("yes", 0.0, 1.5)])
    with pytest.raises(BadValueError, match="no negative audio"):
        evaluate_streams([stream], ["yes", "_unknown_"])


def test_refractory_suppresses_a_second_detection() -> None:
    times = np.arange(1, 41) * 0.1  # 0.1 .. 4.0 s
    post = np.zeros((40, 2))
    post[[9, 14], 0] = 0.9  # peaks at 1.0 s and 1.5 s
    events = [Event("yes", 0.6, 1.2)]  # window [0.6, 1.7] holds both
    one = sweep_decider(["yes", "_unknown_"], smooth_hops=1, refractory=1.0)(times, post, 0.5)
    assert [(d.label, d.start, d.end) for d in one] == [("yes", 1.0, 1.5)]  # merged into one
    assert counts(match_detections(one, events)) == (1, 0, 0)
    two = sweep_decider(["yes", "_unknown_"], smooth_hops=1, refractory=0.3)(times, post, 0.5)
    assert [d.start for d in two] == [1.0, 1.5]
    assert counts(match_detections(two, events)) == (1, 0, 1)  # the second is a false accept


def test_decisions_run_merge_and_smoothing() -> None:
    times = np.arange(1, 51) * 0.1
    post = np.zeros((50, 1))
    post[4:25, 0] = 0.8  # above from 0.5 s to 2.5 s: one detection, however long
    post[[34, 46], 0] = 0.7  # 3.5 s is 1.0 s after 2.5 s: merged; 4.7 s is 1.2 s after: new
    out = sweep_decider(["yes"], smooth_hops=1, refractory=1.0)(times, post, 0.5)
    assert [(round(d.start, 6), round(d.end, 6), d.score) for d in out] == [
        (0.5, 3.5, 0.8),
        (4.7, 4.7, 0.7),
    ]
    smooth = sweep_decider(["yes"], smooth_hops=4, refractory=1.0)(times, post, 0.5)
    assert round(smooth[0].start, 6) == 0.7  # the mean of 4 hops reaches 0.5 at 0.7 s


def test_same_detections_as_the_decisions_module() -> None:
    from distill.deploy.decisions import DecisionConfig, threshold_sweep

    rng = np.random.default_rng(0)
    names = ["yes", "no", "up"]
    times = np.arange(1, 2001) * 0.1
    post = rng.random((2000, 3)) ** 6  # sparse peaks, flickering runs
    config = DecisionConfig(smooth_hops=3, refractory_seconds=0.7)
    theirs, ours = threshold_sweep(names, config), sweep_decider(names, 3, 0.7)
    for threshold in (0.05, 0.2, 0.4, 0.6):
        a = [(d.label, d.start, d.end, round(d.score, 9)) for d in theirs(times, post, threshold)]
        b = [(d.label, d.start, d.end, round(d.score, 9)) for d in ours(times, post, threshold)]
        assert sorted(a) == sorted(b) and len(a) > 10


def sweep_stream() -> ScoredStream:
    """1 h of negative audio exactly: 3604 s minus two 2 s keyword windows (tolerance 0.5)."""
    times = np.arange(1, int(3604 / 0.25) + 1) * 0.25
    post = np.zeros((len(times), 3))

    def at(t: float, k: int, p: float) -> None:
        post[int(round(t / 0.25)) - 1, k] = p

    at(102.0, 0, 0.8)  # yes keyword [100, 101.5]: fires at offset + tolerance (latency 0.5 s)
    at(201.75, 1, 0.4)  # no keyword [200, 201.5]: latency 0.25 s
    at(1000.0, 0, 0.3)  # false accepts: yes 0.3 and 0.6, no 0.2
    at(2000.0, 0, 0.6)
    at(3000.0, 1, 0.2)
    events = [Event("yes", 100.0, 101.5), Event("no", 200.0, 201.5)]
    return ScoredStream("s", 3604.0, times, post, events)


def test_det_operating_points_by_hand(tmp_path) -> None:
    names = ["yes", "no", "_unknown_"]
    one_hop = sweep_decider(names, smooth_hops=1)  # spikes of one hop, unsmoothed
    res = evaluate_streams(
        [sweep_stream()], names, decide=one_hop, thresholds=[0.1, 0.25, 0.5, 0.7, 0.9]
    )
    assert res["keywords"] == ["yes", "no"] and res["negative_hours"] == pytest.approx(1.0)
    det_ = res["det"]
    assert det_["thresholds"] == [0.1, 0.25, 0.5, 0.7, 0.9, None]
    assert det_["pooled"]["fa_per_hour"] == pytest.approx([3, 2, 1, 0, 0, 0])
    assert det_["pooled"]["frr"] == pytest.approx([0, 0, 0.5, 0.5, 1, 1])
    assert det_["per_keyword"]["yes"]["fa_per_hour"] == pytest.approx([2, 2, 1, 0, 0, 0])
    assert det_["per_keyword"]["yes"]["frr"] == pytest.approx([0, 0, 0, 0, 1, 1])
    assert det_["per_keyword"]["no"]["fa_per_hour"] == pytest.approx([1, 0, 0, 0, 0, 0])
    assert det_["per_keyword"]["no"]["frr"] == pytest.approx([0, 0, 1, 1, 1, 1])
    at = res["at_fa_per_hour"]
    # pooled: the lowest threshold with summed FA/h <= target
    assert [at[t]["pooled"]["threshold"] for t in ("0.1", "0.5", "1")] == [0.7, 0.7, 0.5]
    assert [at[t]["pooled"]["frr"] for t in ("0.1", "0.5", "1")] == [0.5, 0.5, 0.5]
    # per keyword: each its own threshold; the mean of their FRRs
    assert at["0.1"]["per_keyword"]["yes"]["threshold"] == 0.7
    assert at["0.1"]["per_keyword"]["no"]["threshold"] == 0.25
    assert at["0.1"]["mean_frr"] == 0.0
    assert at["1"]["per_keyword"]["yes"]["threshold"] == 0.5
    # latency from keyword offset to the detection
    assert at["1"]["pooled"]["latency_median_s"] == pytest.approx(0.5)
    assert at["0.1"]["per_keyword"]["no"]["latency_median_s"] == pytest.approx(0.25)
    assert [at[t]["below_resolution"] for t in ("0.1", "0.5", "1")] == [True, True, False]
    paths = write_result(res, tmp_path)
    assert json.loads(paths["json"].read_text())["at_fa_per_hour"]["1"]["pooled"]["frr"] == 0.5
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_fixed_detections_from_detect() -> None:
    rows = [
        {"start": 1.2, "end": 1.3, "class": "yes", "score": 0.9},  # hit
        {"start": 30.0, "end": 30.2, "class": "yes", "score": 0.7},  # false accept
        {"start": 40.0, "end": 40.1, "class": "_unknown_", "score": 0.8},  # not evaluated
    ]
    events = [Event("yes", 1.0, 1.5), Event("no", 5.0, 5.5)]
    res = evaluate_detections([("a.wav", 1802.0, events, rows)], ["yes", "no"])
    assert res["negative_hours"] == pytest.approx(0.5)  # 1802 s minus two 1 s windows
    assert res["pooled"]["fa_per_hour"] == pytest.approx(2.0) and res["pooled"]["frr"] == 0.5
    assert res["pooled"]["false_accepts_by_stream"] == {"a.wav": 1}
    assert res["per_keyword"]["no"]["frr"] == 1.0 and res["per_keyword"]["yes"]["frr"] == 0.0
    assert res["pooled"]["latency_median_s"] == pytest.approx(-0.3)


def test_latency_percentiles_and_event_onsets() -> None:
    times = np.arange(1, 401) * 0.1  # 40 s
    post = np.zeros((400, 1))
    events = [Event("dog", 5.0 * i, 5.0 * i + 1.0) for i in range(1, 6)]
    for i, lag in enumerate([0.1, 0.2, 0.3, 0.4, 0.5], start=1):
        post[int(round((5.0 * i + 1.0 + lag) / 0.1)) - 1, 0] = 1.0
    stream = ScoredStream("s", 40.0, times, post, events)
    opts = {"decide": sweep_decider(["dog"], smooth_hops=1), "thresholds": [0.5]}
    res = evaluate_streams([stream], ["dog"], **opts)["at_fa_per_hour"]["1"]["pooled"]
    assert res["latency_median_s"] == pytest.approx(0.3)
    assert res["latency_p90_s"] == pytest.approx(0.46)  # numpy's linear percentile
    onset = evaluate_streams([stream], ["dog"], latency_from="onset", **opts)
    assert onset["at_fa_per_hour"]["1"]["pooled"]["latency_median_s"] == pytest.approx(1.3)


def test_a_given_decision_function_is_used() -> None:
    stream = ScoredStream("s", 100.0, np.array([1.0]), np.zeros((1, 2)), [Event("yes", 10, 11)])

    def decide(times, posteriors, threshold):  # noqa: ANN001, ANN202 - a foreign decider
        rows = [{"start": 10.5, "end": 10.6, "class": "yes", "score": 0.9}]
        extra = {"start": 50.0, "end": 50.1, "class": "yes", "score": 0.3}
        return rows + ([extra] if threshold < 0.5 else [])

    res = evaluate_streams([stream], ["yes", "_unknown_"], decide=decide, thresholds=[0.3, 0.6])
    assert res["det"]["pooled"]["frr"] == [0.0, 0.0, 1.0]
    # negative audio: 100 s minus the window [10, 11.5]; one false accept at threshold 0.3
    assert res["det"]["pooled"]["fa_per_hour"] == pytest.approx([3600 / 98.5, 0.0, 0.0])


def test_silent_and_very_short_streams() -> None:
    empty = ScoredStream("short", 0.05, np.zeros(0), np.zeros((0, 2)), [])
    silent = ScoredStream("silent", 30.0, np.arange(1, 301) * 0.1, np.zeros((300, 2)), [])
    kw = ScoredStream("kw", 30.0, np.arange(1, 301) * 0.1, np.zeros((300, 2)), [Event("yes", 3, 4)])
    res = evaluate_streams([empty, silent, kw], ["yes", "_silence_"], thresholds=[0.5])
    assert res["det"]["pooled"]["fa_per_hour"] == [0.0, 0.0]
    assert res["det"]["pooled"]["frr"] == [1.0, 1.0]
    assert res["negative_hours"] == pytest.approx((0.05 + 30 + 28.5) / 3600)
    assert sweep_decider(["yes"])(np.zeros(0), np.zeros((0, 1)), 0.5) == []
    assert sweep_decider(["yes"])(np.array([0.1]), np.ones((1, 1)), 0.5)[0].start == 0.1


def test_bad_inputs_are_refused() -> None:
    ok = ScoredStream("s", 10.0, np.array([1.0, 2.0]), np.zeros((2, 2)), [])
    with pytest.raises(BadValueError, match=r"not among the classes \['yes', 'no'\]"):
        evaluate_streams([ok], ["yes", "no"], keywords=["maybe"])
    bad = ScoredStream("s", 10.0, np.array([1.0, 2.0]), np.full((2, 2), np.nan), [])
    with pytest.raises(BadValueError, match="NaN"):
        evaluate_streams([bad], ["yes", "no"])
    with pytest.raises(BadValueError, match="posteriors"):
        evaluate_streams([ok], ["yes", "no", "maybe"])
    with pytest.raises(BadValueError, match="increasing"):
        evaluate_streams([ok], ["yes", "no"], thresholds=[0.5, 0.2])
    with pytest.raises(BadValueError, match="onset"):
        match_detections([], [Event("yes", 2.0, 1.0)])


def test_det_plot_skips_a_keyword_without_positives(tmp_path) -> None:
    from distill.deploy.stream_report import plot_det

    curve = {"fa_per_hour": [0.0, 2.0], "frr": [1.0, 0.5]}
    result = {
        "fa_per_hour_resolution": 1.0,
        "det": {
            "pooled": curve,
            "per_keyword": {"yes": curve, "no": {"fa_per_hour": [0.0, 2.0], "frr": [None, None]}},
        },
        "at_fa_per_hour": ["0.5", "1"],
        "negative_hours": 1.0,
        "positives": {"yes": 2, "no": 0},
    }
    path = plot_det(result, tmp_path / "det.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
