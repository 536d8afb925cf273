"""The wake-word metric: false accepts per hour of negative audio and false rejects per keyword.

Counting rules (docs/streaming.md, "Evaluate", explains them in words):
- A detection's time is its `start`: the time of the hop at which the decision fired.
- A detection of class c *hits* a labelled keyword (or event) of class c when
  ``onset <= start <= offset + tolerance`` (closed interval, 1e-9 s slack; tolerance 0.5 s by
  default). Detections are taken in time order; each takes, among the unhit keywords whose window
  holds it, the one whose window ends first; a keyword is hit at most once.
- Every other detection of an evaluated class is a *false accept*: a second detection on a
  keyword, a detection of the wrong class, one before the onset, one in negative audio.
- The refractory rule applies to both: detections come from one decision function (smoothing,
  threshold, refractory period; by default the rules of `distill.deploy.decisions`), so a
  detection it suppresses exists neither on a keyword nor in negative audio.
- Negative duration: stream duration minus the union of the keyword windows
  ``[onset, offset + tolerance]`` (clipped to the stream). No negative audio is an error.
- FRR = missed keywords / keywords; FA/h = false accepts / negative hours.
- Operating point at a target FA/h: the lowest threshold of the sweep whose FA/h <= target, no
  interpolation; the sweep ends with a threshold above every score (no detection, FA/h 0), so one
  always exists. The default sweep is refined by bisection where a target's false-accept count
  falls between two neighbouring thresholds whose misses differ (`threshold_refine`), so the
  operating points do not depend on the grid's step near 1.
- Latency: detection start minus the keyword's offset (`latency_from="onset"` for sound events).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill.deploy.decisions import Detection
from distill.deploy.sweep_decider import (
    DEFAULT_REFRACTORY,
    EPS,
    Decide,
    default_thresholds,
    sweep_decider,
)
from distill.deploy.threshold_refine import refine_sweep
from distill.errors import BadValueError

#: Bumped when the rules or the sweep change what a result holds (2: the refined sweep), so a
#: stored result is scored again rather than reused.
METRIC_VERSION = 2
DEFAULT_TOLERANCE = 0.5
DEFAULT_TARGETS = (0.1, 0.5, 1.0)
NON_KEYWORDS = ("_unknown_", "_silence_")


@dataclass(frozen=True)
class Event:
    """A labelled keyword or sound event: class and span in seconds from the stream start."""

    cls: str
    onset: float
    offset: float


@dataclass
class Matching:
    """The outcome of the counting rules on one stream."""

    hits: list[tuple[Event, Detection]] = field(default_factory=list)
    misses: list[Event] = field(default_factory=list)
    false_accepts: list[Detection] = field(default_factory=list)


@dataclass
class ScoredStream:
    """A stream's per-hop posteriors: `times` (H,) seconds, `posteriors` (H, K), its labels."""

    name: str
    duration: float
    times: np.ndarray
    posteriors: np.ndarray
    events: list[Event]


def as_detection(item: Any) -> Detection:
    """A Detection (`distill.deploy.decisions`) from a Detection, a mapping or an object with
    start, end, score and the class under `label`, `class`, `cls` or `class_name` (what
    `distill detect` writes)."""
    if isinstance(item, Detection):
        return item
    get = item.get if isinstance(item, Mapping) else lambda k: getattr(item, k, None)
    keys = ("label", "class", "cls", "class_name")
    cls = next((get(k) for k in keys if get(k) is not None), None)
    if cls is None or get("start") is None:
        raise BadValueError(f"detection {item!r}: expected a class and a start time")
    start = float(get("start"))
    end = float(get("end")) if get("end") is not None else start
    score = float(get("score")) if get("score") is not None else math.nan
    return Detection(start, end, str(cls), score)


def match_detections(
    detections: Iterable[Any], events: Sequence[Event], tolerance: float = DEFAULT_TOLERANCE
) -> Matching:
    """Apply the counting rules (module doc) to the detections and labels of one stream."""
    if tolerance < 0:
        raise BadValueError(f"tolerance must be >= 0 seconds, got {tolerance}")
    bad = [e for e in events if not e.onset <= e.offset]
    if bad:
        raise BadValueError(f"label {bad[0]}: onset must be <= offset")
    by_class: dict[str, list[int]] = {}
    for j in sorted(range(len(events)), key=lambda j: events[j].onset):
        by_class.setdefault(events[j].cls, []).append(j)
    onsets = {c: [events[j].onset for j in js] for c, js in by_class.items()}
    reach = max((e.offset + tolerance - e.onset for e in events), default=0.0)
    out, hit = Matching(), [False] * len(events)
    for det in sorted((as_detection(d) for d in detections), key=lambda d: d.start):
        js, best = by_class.get(det.label, []), -1
        p = bisect.bisect_right(onsets.get(det.label, []), det.start + EPS) - 1
        while p >= 0 and events[js[p]].onset >= det.start - reach - EPS:
            ev = events[js[p]]
            inside = not hit[js[p]] and det.start <= ev.offset + tolerance + EPS
            if inside and (best < 0 or ev.offset < events[best].offset):
                best = js[p]
            p -= 1
        if best < 0:
            out.false_accepts.append(det)
        else:
            hit[best] = True
            out.hits.append((events[best], det))
    out.misses = [ev for j, ev in enumerate(events) if not hit[j]]
    return out


def negative_seconds(
    duration: float, events: Sequence[Event], tolerance: float = DEFAULT_TOLERANCE
) -> float:
    """Stream duration minus the union of the keyword windows [onset, offset + tolerance]."""
    spans = sorted(
        (max(0.0, e.onset), min(duration, e.offset + tolerance))
        for e in events
        if min(duration, e.offset + tolerance) > max(0.0, e.onset)
    )
    covered, end = 0.0, -math.inf
    for a, b in spans:
        a = max(a, end)
        if b > a:
            covered += b - a
            end = b
    return max(0.0, duration - covered)


def check_stream(stream: ScoredStream, n_classes: int) -> None:
    """Refuse posteriors that do not fit their times or classes, or hold NaN/inf."""
    t, p = np.asarray(stream.times), np.asarray(stream.posteriors)
    if t.ndim != 1 or p.ndim != 2 or p.shape != (len(t), n_classes):
        raise BadValueError(
            f"stream {stream.name}: posteriors {p.shape} must be (hops={len(t)}, classes="
            f"{n_classes}) for times {t.shape}"
        )
    if len(t) and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0)):
        raise BadValueError(f"stream {stream.name}: hop times must be finite and increasing")
    if not np.all(np.isfinite(p)):
        raise BadValueError(f"stream {stream.name}: posteriors hold NaN or inf")
    if not stream.duration >= 0:
        raise BadValueError(f"stream {stream.name}: duration {stream.duration} must be >= 0")


def evaluate_streams(
    streams: Sequence[ScoredStream],
    class_names: Sequence[str],
    keywords: Sequence[str] | None = None,
    decide: Decide | None = None,
    thresholds: Sequence[float] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    targets: Sequence[float] = DEFAULT_TARGETS,
    latency_from: str = "offset",
    refine: bool | None = None,
) -> dict[str, Any]:
    """Sweep the threshold over every stream into a DET curve (pooled and per keyword) and the
    operating points at the target FA/h; a JSON-ready dict (rules, streams, det, at_fa_per_hour).

    `refine` bisects the sweep around the operating points (default: only for the default
    thresholds; given thresholds are used as they are)."""
    names = list(class_names)
    kws = [c for c in names if c not in NON_KEYWORDS] if keywords is None else list(keywords)
    unknown = [k for k in kws if k not in names]
    if unknown or not kws:
        raise BadValueError(f"keywords {unknown or kws} are not among the classes {names}")
    if latency_from not in ("offset", "onset"):
        raise BadValueError(f"latency_from must be 'offset' or 'onset', got {latency_from!r}")
    decide = decide or sweep_decider(names)
    ths = np.asarray(default_thresholds() if thresholds is None else thresholds, np.float64)
    if len(ths) == 0 or np.any(np.diff(ths) <= 0):
        raise BadValueError("thresholds must be a non-empty increasing list")
    if not np.isinf(ths[-1]):
        ths = np.append(ths, np.inf)
    neg = _negative_hours(streams, names, tolerance)

    def count_at(th: float) -> dict[str, dict[str, Any]]:
        return _count_at(streams, kws, decide, th, tolerance, latency_from)

    points = [count_at(float(th)) for th in ths]
    refined = (thresholds is None) if refine is None else refine
    if refined:
        allowed = [t * neg for t in targets]
        ths, points = refine_sweep(ths, points, count_at, _scope_counts(kws), allowed)
    return {
        "rules": _rules(tolerance, latency_from, decide, refined),
        "streams": [_stream_row(s, kws, tolerance) for s in streams],
        "keywords": kws,
        "negative_hours": neg,
        "fa_per_hour_resolution": 1.0 / neg,
        "positives": {k: sum(e.cls == k for s in streams for e in s.events) for k in kws},
        "det": _det(points, ths, kws, neg),
        "at_fa_per_hour": {f"{t:g}": _at_target(points, ths, kws, neg, t) for t in targets},
    }


def _scope_counts(kws: list[str]) -> Callable[[dict], tuple[list[int], list[int]]]:
    """(false accepts, misses) of one sweep point: pooled over the keywords, then each."""

    def counts(point: dict) -> tuple[list[int], list[int]]:
        fa = [point[k]["fa"] for k in kws]
        misses = [point[k]["misses"] for k in kws]
        return [sum(fa), *fa], [sum(misses), *misses]

    return counts


def _negative_hours(streams: Sequence[ScoredStream], names: list[str], tol: float) -> float:
    if not streams:
        raise BadValueError("no streams to evaluate")
    for s in streams:
        check_stream(s, len(names))
    total = sum(negative_seconds(s.duration, s.events, tol) for s in streams)
    if total <= 0:
        raise BadValueError(
            f"no negative audio: the streams {[s.name for s in streams]} are covered by keyword "
            "windows; FA per hour needs negative audio"
        )
    return total / 3600.0


def _count_at(
    streams: Sequence[ScoredStream],
    kws: list[str],
    decide: Decide,
    threshold: float,
    tol: float,
    latency_from: str,
) -> dict[str, dict[str, Any]]:
    """Per keyword at one threshold: hits, misses, false accepts (per stream), latencies."""
    per_stream = []
    for s in streams:
        dets = [] if np.isinf(threshold) else decide(s.times, s.posteriors, threshold)
        per_stream.append((s.name, s.events, dets))
    return _count(per_stream, kws, tol, latency_from)


def _count(
    per_stream: Iterable[tuple[str, Sequence[Event], Iterable[Any]]],
    kws: list[str],
    tol: float,
    latency_from: str,
) -> dict[str, dict[str, Any]]:
    out = {k: {"hits": 0, "misses": 0, "fa": 0, "lat": [], "fa_by": {}} for k in kws}
    keep = set(kws)
    for name, events, dets in per_stream:
        dets = [d for d in map(as_detection, dets) if d.label in keep]
        m = match_detections(dets, [e for e in events if e.cls in keep], tol)
        for ev, det in m.hits:
            out[ev.cls]["hits"] += 1
            ref = ev.offset if latency_from == "offset" else ev.onset
            out[ev.cls]["lat"].append(det.start - ref)
        for ev in m.misses:
            out[ev.cls]["misses"] += 1
        for det in m.false_accepts:
            out[det.label]["fa"] += 1
            out[det.label]["fa_by"][name] = out[det.label]["fa_by"].get(name, 0) + 1
    return out


def _summary(counts: list[dict[str, Any]], neg_hours: float, threshold: float) -> dict[str, Any]:
    """FA/h, FRR and latency of a set of per-keyword counts (pooled when several)."""
    hits = sum(c["hits"] for c in counts)
    n = hits + sum(c["misses"] for c in counts)
    fa = sum(c["fa"] for c in counts)
    lat = np.asarray([x for c in counts for x in c["lat"]], np.float64)
    by_stream: dict[str, int] = {}
    for c in counts:
        for name, k in c["fa_by"].items():
            by_stream[name] = by_stream.get(name, 0) + k
    return {
        "threshold": None if not math.isfinite(threshold) else threshold,
        "fa_per_hour": fa / neg_hours,
        "false_accepts": fa,
        "frr": (n - hits) / n if n else None,
        "hits": hits,
        "positives": n,
        "latency_median_s": float(np.median(lat)) if len(lat) else None,
        "latency_p90_s": float(np.percentile(lat, 90)) if len(lat) else None,
        "false_accepts_by_stream": by_stream,
    }


def _det(points: list[dict], ths: np.ndarray, kws: list[str], neg: float) -> dict[str, Any]:
    def curve(keys: list[str]) -> dict[str, list]:
        rows = [_summary([p[k] for k in keys], neg, float(t)) for p, t in zip(points, ths)]
        return {"fa_per_hour": [r["fa_per_hour"] for r in rows], "frr": [r["frr"] for r in rows]}

    return {
        "thresholds": [None if np.isinf(t) else float(t) for t in ths],
        "pooled": curve(kws),
        "per_keyword": {k: curve([k]) for k in kws},
    }


def _at_target(
    points: list[dict], ths: np.ndarray, kws: list[str], neg: float, target: float
) -> dict[str, Any]:
    """Operating points at one FA/h target: pooled (one threshold for all keywords, their
    summed FA/h) and per keyword (each its own threshold), and the mean of per-keyword FRRs."""

    def first_meeting(keys: list[str]) -> dict[str, Any]:
        for p, t in zip(points, ths):
            row = _summary([p[k] for k in keys], neg, float(t))
            if row["fa_per_hour"] <= target + 1e-12:
                return row
        raise AssertionError("the +inf threshold always meets the target")

    per = {k: first_meeting([k]) for k in kws}
    frrs = [r["frr"] for r in per.values() if r["frr"] is not None]
    return {
        "pooled": first_meeting(kws),
        "per_keyword": per,
        "mean_frr": float(np.mean(frrs)) if frrs else None,
        "below_resolution": target < 1.0 / neg,
    }


def _rules(tol: float, latency_from: str, decide: Decide, refined: bool) -> dict[str, Any]:
    return {
        "tolerance_s": tol,
        "hit": "same class and onset <= start <= offset + tolerance; each keyword hit once",
        "false_accept": "every other detection of an evaluated class",
        "negative_duration": "stream duration minus the union of [onset, offset + tolerance]",
        "operating_point": "lowest swept threshold with FA/h <= target (no interpolation)",
        "sweep": "default grid refined by bisection around the operating points"
        if refined
        else "the given thresholds",
        "mean_frr": "mean over keywords with positives of FRR at each keyword's own threshold",
        "latency": f"detection start minus keyword {latency_from}",
        "decision": getattr(decide, "describe", getattr(decide, "__name__", repr(decide))),
    }


def _stream_row(s: ScoredStream, kws: list[str], tol: float) -> dict[str, Any]:
    return {
        "name": s.name,
        "seconds": s.duration,
        "negative_seconds": negative_seconds(s.duration, s.events, tol),
        "keywords": sum(e.cls in kws for e in s.events),
    }


def evaluate_detections(
    streams: Sequence[tuple[str, float, Sequence[Event], Iterable[Any]]],
    keywords: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    latency_from: str = "offset",
) -> dict[str, Any]:
    """One operating point from fixed detections (e.g. `distill detect` at its thresholds):
    `streams` as (name, duration, labels, detections); pooled and per keyword."""
    kws = list(keywords)
    neg = sum(negative_seconds(d, ev, tolerance) for _, d, ev, _ in streams) / 3600
    if neg <= 0:
        raise BadValueError("no negative audio in the streams; FA per hour needs negative audio")
    rows = [(name, ev, dets) for name, _, ev, dets in streams]
    counts = _count(rows, kws, tolerance, latency_from)
    return {
        "negative_hours": neg,
        "pooled": _summary([counts[k] for k in kws], neg, math.nan),
        "per_keyword": {k: _summary([counts[k]], neg, math.nan) for k in kws},
    }


__all__ = [
    "METRIC_VERSION",
    "DEFAULT_REFRACTORY",
    "DEFAULT_TARGETS",
    "DEFAULT_TOLERANCE",
    "Decide",
    "Detection",
    "Event",
    "Matching",
    "ScoredStream",
    "as_detection",
    "check_stream",
    "default_thresholds",
    "evaluate_detections",
    "evaluate_streams",
    "match_detections",
    "negative_seconds",
    "sweep_decider",
]
