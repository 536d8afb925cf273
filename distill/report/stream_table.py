"""The streaming table of a compare report: per student and loss arm, FRR at each target FA/h,
the best FRR of the DET curve at looser budgets, and the detection latency, mean ± std over
seeds (`distill compare --stream-eval`)."""

from __future__ import annotations

import statistics
from typing import Any

from distill.report.results import MISSING_CELL, STREAM_COLUMNS, markdown_table

FRR_TARGETS = [c for c in STREAM_COLUMNS if c.startswith("frr_at_")]
LATENCY = "stream_latency_median_s"
HOURS = "stream_negative_hours"
LOOSE_FA_PER_HOUR = (10.0, 100.0)  # budgets far above a deployment's, to grade weak detectors


def _values(items: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in items if r.get(key) not in (None, "")]


def _mean_std(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return MISSING_CELL
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * std:.{digits}f}"


def _target_name(column: str) -> str:
    return column.removeprefix("frr_at_").removesuffix("_fa_h")


def best_frr_within(curve: dict[str, Any], fa_per_hour: float) -> float:
    """The lowest FRR of a DET curve's thresholds whose FA/h is at most `fa_per_hour` (1.0 when
    none is): the curve's lower envelope, not the operating-point rule of the sweep."""
    frr = [r for f, r in zip(curve["fa_per_hour"], curve["frr"]) if f <= fa_per_hour]
    return min(frr, default=1.0)


def _loose_values(curves: list[dict[str, Any]], fa_per_hour: float) -> list[float]:
    return [best_frr_within(c, fa_per_hour) for c in curves]


def stream_table_rows(
    rows: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]] | None = None
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the streaming table, one row per (student, arm) that has the metric,
    in first-seen order; FRR in percent; with `curves` (per student, each run's pooled DET with
    its arm, as `distill.report.build.det_curves` gives) the best FRR within 10 and 100 FA/h;
    latency in seconds over the seeds that detect at all (their count in brackets when some
    seeds never detect at 0.5 FA/h)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("frr_at_0.5_fa_h") not in (None, ""):
            groups.setdefault((row["student"], row["arm"]), []).append(row)
    header = ["student", "loss", "test score (%)"]
    header += [f"FRR at {_target_name(c)} FA/h (%)" for c in FRR_TARGETS]
    if curves is not None:
        header += [f"best FRR within {f:g} FA/h (%)" for f in LOOSE_FA_PER_HOUR]
    header += ["latency at 0.5 FA/h, median (s)", "seeds", "negative hours"]
    table = []
    for (student, arm), items in groups.items():
        latency = _values(items, LATENCY)
        cell = _mean_std(latency, 1.0, 2)
        if latency and len(latency) < len(items):
            cell += f" ({len(latency)} of {len(items)} seeds)"
        hours = _values(items, HOURS)
        row = [student, arm, _mean_std(_values(items, "test_score"), 100.0, 2)]
        row += [_mean_std(_values(items, c), 100.0, 1) for c in FRR_TARGETS]
        if curves is not None:
            runs = [c for c in curves.get(student, []) if c["arm"] == arm]
            row += [_mean_std(_loose_values(runs, f), 100.0, 1) for f in LOOSE_FA_PER_HOUR]
        row += [cell, str(len(items)), f"{min(hours):.2f}" if hours else MISSING_CELL]
        table.append(row)
    return header, table


def stream_table_markdown(
    rows: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]] | None = None
) -> str:
    """The streaming table as a summary.md section; empty when no run has the metric."""
    header, table = stream_table_rows(rows, curves)
    if not table:
        return ""
    lines = [
        "### Streaming metric (pooled over keywords, one threshold for all)",
        "",
        *markdown_table(header, table),
        "",
        "Mean ± std over seeds. Latency: from the keyword's end to the detection, the median of "
        "a run's hits, averaged over the runs that detect any keyword at 0.5 FA/h. Best FRR "
        "within X FA/h: the lowest FRR of the threshold sweep with at most X false accepts per "
        "hour (the DET curve's lower envelope).",
    ]
    return "\n".join(lines)
