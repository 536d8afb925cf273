"""The report's test confusion matrices: from the runs' results.json, best method arm per
student, summed over seeds, shown in report.html and linked from summary.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import distill.report.confusion as confusion
from distill.report.build import write_report
from distill.report.results import read_rows
from tests.helpers.report_html import check_png, parse
from tests.report.fakes import CLASSES, fake_recipe, write_grid


def matrix_of(student: str, arm: str, seed: int) -> list[list[int]]:
    """A distinct 4 x 4 matrix per run: the diagonal holds 5 + seed, cell (0, 1) the arm."""
    counts = np.eye(len(CLASSES), dtype=int) * (5 + seed)
    counts[0, 1] = {"none": 1, "temporal": 2, "span": 3}[arm]
    counts[2, 3] = 4 if student == "crnn" else 0
    return counts.tolist()


def write_results(csv_path: Path) -> None:
    """results.json with a test_report in every run directory of the fake grid."""
    for row in read_rows(csv_path):
        report = {
            "task": "single_label",
            "confusion_matrix": {
                "classes": CLASSES,
                "counts": matrix_of(row["student"], row["arm"], int(row["seed"])),
            },
        }
        (Path(row["run_dir"]) / "results.json").write_text(json.dumps({"test_report": report}))


def test_report_shows_the_best_method_arms_confusion_matrix(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False)
    write_results(csv_path)
    html_path = write_report(fake_recipe(tmp_path, teacher=False), out, csv_path)
    for student in ("tc_resnet8", "crnn"):
        check_png(out / f"confusion_{student}.png")
    text = html_path.read_text(encoding="utf-8")
    # temporal is each student's best method arm (mean 0.485 > 0.42, 0.61 > 0.58); span, the
    # best score of all, is a control and not shown
    assert "Test confusion matrix of tc_resnet8, arm temporal" in text
    assert "Test confusion matrix of crnn, arm temporal" in text
    assert "summed over 2 seeds (0, 1)" in text
    # 3 figures without samples or latency (scores, MACs, localisation) + 2 confusion matrices
    assert len(parse(html_path).images) == 5
    summary = (out / "summary.md").read_text()
    assert "### Test confusion matrices" in summary
    assert "![confusion_crnn](confusion_crnn.png)" in summary


def test_confusion_matrices_are_summed_over_the_arms_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False)
    write_results(csv_path)
    drawn = {}
    monkeypatch.setattr(
        confusion, "plot_confusion", lambda m, heading, path: drawn.setdefault(path.stem, m)
    )
    rows = read_rows(csv_path)
    figures, notes = confusion.confusion_figures(rows, [Path(r["run_dir"]) for r in rows], out)
    assert not notes and len(figures) == 2
    crnn = drawn["confusion_crnn"]
    assert crnn["classes"] == CLASSES
    # seeds 0 and 1 of crnn/temporal: diagonal (5 + 0) + (5 + 1) = 11, (0, 1) 2 + 2, (2, 3) 4 + 4
    expected = np.eye(4, dtype=int) * 11
    expected[0, 1], expected[2, 3] = 4, 8
    assert (crnn["counts"] == expected).all()


def test_runs_without_a_matrix_get_a_note(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    html_path = write_report(
        fake_recipe(tmp_path, teacher=False), out, write_grid(out, samples=False)
    )
    assert not list(out.glob("confusion_*.png"))
    assert "No test confusion matrix in the results.json of the best method arm of " in (
        html_path.read_text(encoding="utf-8")
    )
    assert "confusion" not in (out / "summary.md").read_text()


def test_a_malformed_matrix_is_refused_with_its_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    bad = {"test_report": {"confusion_matrix": {"classes": ["a", "b"], "counts": [[1, 2]]}}}
    (run / "results.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"run/results\.json: test_report\.confusion_matrix"):
        confusion.read_confusion(run)


def test_many_classes_plot_without_cell_counts(tmp_path: Path) -> None:
    k = 35
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, (k, k)) + np.eye(k, dtype=int) * 30
    counts[3] = 0  # a class without test clips: an empty row, not a division by zero
    matrix = {"classes": [f"word{i}" for i in range(k)], "counts": counts}
    path = confusion.plot_confusion(matrix, "35 keywords", tmp_path / "cm.png")
    check_png(path)
