"""The test confusion matrices of a report: per student, its best method arm's matrices (from
the `test_report` of each run's results.json, written by `distill fit`) summed over seeds."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import BadValueError
from distill.extras import require
from distill.files import atomic_path
from distill.report.plots import DPI

require("matplotlib", "report", "the report's figures")  # then matplotlib itself:
from matplotlib.figure import Figure  # noqa: E402

ANNOTATE_MAX = 20  # classes up to which each cell shows its count
RESULTS_FILE = "results.json"
CAPTION = (
    "Test confusion matrix of {student}, arm {arm} (its best method arm), summed over "
    "{seeds}: rows are the true class, columns the predicted one; colour is the share of the "
    "row (per-class recall on the diagonal){counts}."
)


def read_confusion(run_dir: Path) -> dict[str, Any] | None:
    """The test confusion matrix of a run ({classes, counts}); None when the run has no
    results.json or it holds none (multi-label, or written before the matrix was recorded)."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadValueError(f"{path}: not a JSON results file ({err})") from None
    matrix = (data.get("test_report") or {}).get("confusion_matrix")
    if matrix is None:
        return None
    if not isinstance(matrix, dict):
        raise BadValueError(f"{path}: test_report.confusion_matrix is not an object")
    classes, counts = matrix.get("classes"), np.asarray(matrix.get("counts"))
    k = len(classes or [])
    if not k or counts.shape != (k, k) or (counts < 0).any():
        raise BadValueError(
            f"{path}: test_report.confusion_matrix must hold {k or 'K'} class names and a "
            f"K x K table of counts, got shape {counts.shape}"
        )
    return {"classes": list(classes), "counts": counts.astype(np.int64)}


def plot_confusion(matrix: dict[str, Any], heading: str, path: Path) -> Path:
    """A K x K heat map of the row-normalised matrix (rows: true class), counts in the cells
    when K <= ANNOTATE_MAX."""
    counts = np.asarray(matrix["counts"], dtype=float)
    names, k = matrix["classes"], len(matrix["classes"])
    support = counts.sum(1, keepdims=True)
    share = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    side = min(16.0, max(4.5, 0.32 * k + 3.0))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 9 if k <= 20 else 7 if k <= 50 else 4
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    if k <= ANNOTATE_MAX:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if share[i, j] > 0.5 else "0.15"
                    ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center",
                            fontsize=font, color=colour)  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(heading, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's clips")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def _best_method_arm(rows: list[dict[str, str]], student: str) -> str | None:
    """The method arm of `student` with the highest mean test score."""
    scores: dict[str, list[float]] = {}
    for row in rows:
        if row["student"] == student and row["group"] == "method":
            scores.setdefault(row["arm"], []).append(float(row["test_score"]))
    return max(scores, key=lambda a: statistics.fmean(scores[a])) if scores else None


def _summed(matrices: list[dict[str, Any]], where: str) -> dict[str, Any]:
    classes = matrices[0]["classes"]
    if any(m["classes"] != classes for m in matrices):
        raise BadValueError(f"{where}: the runs' confusion matrices name different classes")
    return {"classes": classes, "counts": sum(m["counts"] for m in matrices)}


def confusion_figures(
    rows: list[dict[str, str]], run_dirs: list[Path], out_dir: Path
) -> tuple[list[tuple[Path, str]], list[str]]:
    """(PNG path, caption) per student with a recorded matrix in its best method arm, and
    notes on the students without one; `run_dirs[i]` is the run directory of `rows[i]`."""
    figures: list[tuple[Path, str]] = []
    missing: list[str] = []
    for student in dict.fromkeys(r["student"] for r in rows):
        arm = _best_method_arm(rows, student)
        runs = [
            (row, read_confusion(run_dir))
            for row, run_dir in zip(rows, run_dirs)
            if row["student"] == student and row["arm"] == arm
        ]
        found = [(row, m) for row, m in runs if m is not None]
        if not found:
            missing.append(student)
            continue
        matrix = _summed([m for _, m in found], f"{student}/{arm}")
        seeds = ", ".join(str(row["seed"]) for row, _ in found)
        label = f"seed {seeds}" if len(found) == 1 else f"{len(found)} seeds ({seeds})"
        path = out_dir / f"confusion_{re.sub(r'[^A-Za-z0-9_.-]+', '_', student)}.png"
        plot_confusion(matrix, f"{student}, arm {arm}, {label}", path)
        k = len(matrix["classes"])
        counts = ", counts in the cells" if k <= ANNOTATE_MAX else ""
        caption = CAPTION.format(student=student, arm=arm, seeds=label, counts=counts)
        figures.append((path, caption))
    notes = [
        f"No test confusion matrix in the results.json of the best method arm of "
        f"{', '.join(missing)} (multi-label data, or runs from before it was recorded)."
    ]
    return figures, notes if missing else []


def confusion_markdown(figures: list[tuple[Path, str]]) -> str:
    """The summary.md section linking the confusion-matrix PNGs (empty without any)."""
    if not figures:
        return ""
    lines = ["### Test confusion matrices", ""]
    for path, caption in figures:
        lines += [f"![{path.stem}]({path.name})", "", caption, ""]
    return "\n".join(lines)
