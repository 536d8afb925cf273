"""The results table of a grid (results.csv): its columns, rows, reading and summary per cell."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

from distill.core.losses.arms import Arm
from distill.core.metric_report import MULTI_LABEL_SCALARS, SINGLE_LABEL_SCALARS
from distill.files import atomic_path
from distill.pipeline.results import FitResult

RESULT_COLUMNS = [
    "student", "arm", "group", "seed", "metric", "test_score", "best_val", "params", "macs",
    "student_attention_in_span", "student_attention_entropy", "target_attention_in_span",
    "target_attention_entropy", "latency_ms_b1", "epochs", "wall_seconds", "run_dir",
]  # fmt: skip


# Added by `distill compare --stream-eval` (distill.deploy.stream_run.frr_columns): pooled FRR
# at 0.1, 0.5 and 1 false accepts per hour, the latency at 0.5 FA/h and the negative hours.
STREAM_COLUMNS = [
    "frr_at_0.1_fa_h", "frr_at_0.5_fa_h", "frr_at_1_fa_h", "stream_latency_median_s",
    "stream_negative_hours",
]  # fmt: skip


# The test metrics besides the headline (docs/metrics.md), each a column when a row has it:
# macro F1 and balanced accuracy (single-label); micro mAP, AUROC, d', lwlrap (multi-label).
METRIC_COLUMNS = [
    c for c in (*SINGLE_LABEL_SCALARS, *MULTI_LABEL_SCALARS) if c not in ("acc", "mAP")
]


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """The CSV columns for `rows`: RESULT_COLUMNS, the METRIC_COLUMNS some row has, then
    STREAM_COLUMNS when a row has them (an older grid keeps its columns)."""
    metrics = [c for c in METRIC_COLUMNS if any(c in row for row in rows)]
    streaming = any(c in row for row in rows for c in STREAM_COLUMNS)
    return RESULT_COLUMNS + metrics + (STREAM_COLUMNS if streaming else [])


def result_row(student: str, arm: Arm, seed: int, results: FitResult) -> dict[str, Any]:
    """One CSV row from a run's results."""
    test = results.test
    metric = results.monitor.split("/", 1)[1]
    return {
        "student": student,
        "arm": arm.name,
        "group": "control" if arm.is_control else "method",
        "seed": seed,
        "metric": metric,
        "test_score": test.get(f"test/{metric}"),
        "best_val": results.best_val,
        "params": results.params,
        "macs": results.macs,
        "student_attention_in_span": test.get("test/student_attention_in_span"),
        "student_attention_entropy": test.get("test/student_attention_entropy"),
        "target_attention_in_span": test.get("test/target_attention_in_span"),
        "target_attention_entropy": test.get("test/target_attention_entropy"),
        "epochs": results.epochs,
        "wall_seconds": results.wall_seconds,
        "run_dir": results.run_dir,
        **{c: test[f"test/{c}"] for c in METRIC_COLUMNS if f"test/{c}" in test},
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write results.csv atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns_of(rows))
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results.csv."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def summarise(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the test score per (student, arm), in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["student"], row["arm"]), []).append(row)
    summary = []
    for (student, arm), items in groups.items():
        scores = [float(r["test_score"]) for r in items]
        in_span = [
            float(r["student_attention_in_span"])
            for r in items
            if r.get("student_attention_in_span") not in (None, "")
        ]
        summary.append({
            "student": student,
            "arm": arm,
            "group": items[0]["group"],
            "metric": items[0]["metric"],
            "n": len(scores),
            "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "in_span": statistics.fmean(in_span) if in_span else None,
        })  # fmt: skip
    return summary


MISSING_CELL = "–"  # a table cell without a value


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]
