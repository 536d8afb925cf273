"""write_report on a fake compare folder: PNGs, a self-contained HTML page, numbers from the CSV."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from distill.report.build import write_report
from tests.helpers.report_html import check_png, parse
from tests.report.fakes import (
    ENTROPY,
    IN_SPAN,
    SCORES,
    STUDENTS,
    fake_recipe,
    write_grid,
    write_teacher,
)


def test_report_of_a_full_grid(tmp_path: Path) -> None:
    write_teacher(tmp_path)
    out = tmp_path / "compare"
    csv_path = write_grid(out)
    html_path = write_report(fake_recipe(tmp_path), out, csv_path)

    assert html_path == out / "report.html"
    pngs = ["scores", "score_vs_macs", "attention_tc_resnet8", "attention_crnn", "localisation"]
    for name in pngs:
        check_png(out / f"{name}.png")
    assert not (out / "score_vs_latency.png").exists()

    text = html_path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "the report must not reference external resources"
    assert not re.search(r"<(script|link)\b", text)
    assert "fake-compare" in text and "Fake grid for report tests" in text
    assert "Latency was not measured for these runs" in text
    tables = parse(html_path)
    assert len(tables.images) == len(pngs)
    assert all(src.startswith("data:image/png;base64,") for src in tables.images)

    methods = tables.tables["summary methods"]
    controls = tables.tables["summary controls"]
    assert methods[0][:3] == ["student", "loss", "test score (%)"]
    method_arms = {(s, a) for s in STUDENTS for a in ("none", "temporal")}
    assert {(r[0], r[1]) for r in methods[1:]} == method_arms
    assert {(r[0], r[1]) for r in controls[1:]} == {(s, "span") for s in STUDENTS}
    for row in methods[1:] + controls[1:]:
        student, arm, score, n, in_span, entropy = row
        scores = SCORES[(student, arm)]
        mean, std = (float(v) for v in score.split(" ± "))
        assert mean == pytest.approx(100 * statistics.fmean(scores), abs=0.005)
        assert std == pytest.approx(100 * statistics.stdev(scores), abs=0.005)
        assert int(n) == len(scores)
        if IN_SPAN[arm] == "":
            assert in_span == entropy == "–"
        else:
            assert float(in_span.rstrip("%")) == pytest.approx(100 * IN_SPAN[arm], abs=0.05)
            assert float(entropy) == pytest.approx(ENTROPY[arm], abs=5e-4)

    runs = tables.tables["runs"]
    assert len(runs) == 1 + len(SCORES) * 2
    assert runs[0][:3] == ["student", "arm", "group"]

    summary_md = (out / "summary.md").read_text()
    assert "### Controls (localisation checks, not methods)" in summary_md
    assert summary_md.index("| tc_resnet8 | none |") < summary_md.index("### Controls")
    assert summary_md.index("### Controls") < summary_md.index("| tc_resnet8 | span |")
    for row in methods[1:] + controls[1:]:  # the same formatted cells as the HTML
        assert "| " + " | ".join(row) + " |" in summary_md
    assert "Teacher: test acc 49.00%, attention argmax in span 88.0%" in summary_md
    # the paper's layout: one row per student, one column per method arm, controls left out
    matrix = summary_md.split("### Methods per student (one column per loss arm)")[1]
    matrix = matrix.split("###")[0]
    assert "| student | none | temporal |" in matrix and "span" not in matrix
    for student in STUDENTS:
        cells = [
            f"{100 * statistics.fmean(SCORES[(student, arm)]):.2f} ± "
            f"{100 * statistics.stdev(SCORES[(student, arm)]):.2f}"
            for arm in ("none", "temporal")
        ]
        assert f"| {student} | {cells[0]} | {cells[1]} |" in matrix
    assert "attention entropy 3.670 nats" in summary_md


def test_report_without_teacher_or_samples_single_seed(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False, seeds=1)
    html_path = write_report(fake_recipe(tmp_path, teacher=False), out, csv_path)
    text = html_path.read_text(encoding="utf-8")
    assert "No teacher in this recipe" in text
    assert "No attention_samples.npz in the runs of crnn" in text
    assert not list(out.glob("attention_*.png"))
    for name in ("scores", "score_vs_macs", "localisation"):
        check_png(out / f"{name}.png")
    methods = parse(html_path).tables["summary methods"]
    assert all(row[2].endswith(" ± 0.00") and row[3] == "1" for row in methods[1:])
    assert "Teacher:" not in (out / "summary.md").read_text()


def test_report_with_missing_teacher_file_multilabel_and_latency(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, metric="mAP", latency=True)
    html_path = write_report(fake_recipe(tmp_path), out, csv_path)  # no results.json written
    text = html_path.read_text(encoding="utf-8")
    assert "Teacher results not found" in text
    assert "test mAP" in text
    check_png(out / "score_vs_latency.png")
    check_png(out / "attention_crnn.png")
    assert "Latency was not measured" not in text
    assert "latency ms b1" in parse(html_path).tables["runs"][0]


def test_bad_csv_is_refused_with_the_file_and_line(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False)
    lines = csv_path.read_text().splitlines()
    lines[3] = lines[3].replace(",0.48,", ",,", 1)
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"results\.csv line 4: test_score ''"):
        write_report(fake_recipe(tmp_path, teacher=False), out, csv_path)


def test_samples_without_required_arrays_are_refused(tmp_path: Path) -> None:
    import numpy as np

    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False)
    bad = out / "crnn" / "temporal" / "seed0" / "attention_samples.npz"
    np.savez(bad, waveform=np.zeros((2, 100), np.float16))
    with pytest.raises(ValueError, match="attention_samples.npz: missing array"):
        write_report(fake_recipe(tmp_path, teacher=False), out, csv_path)


def test_attention_plot_comes_from_the_best_temporal_seed(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    html_path = write_report(fake_recipe(tmp_path, teacher=False), out, write_grid(out))
    text = html_path.read_text(encoding="utf-8")
    assert "tc_resnet8, arm temporal, seed 1 (best seed with samples)" in text  # 0.49 > 0.48
    assert "crnn, arm temporal, seed 0 (best seed with samples)" in text  # 0.62 > 0.60


def test_methods_only_grid_has_no_controls_table(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    csv_path = write_grid(out, samples=False)
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(line for line in lines if ",span," not in line) + "\n")
    html_path = write_report(fake_recipe(tmp_path, teacher=False), out, csv_path)
    tables = parse(html_path).tables
    assert "summary controls" not in tables and len(tables["summary methods"]) == 5
    assert "Controls" not in (out / "summary.md").read_text()


def test_pareto_front_keeps_only_undominated_points() -> None:
    from distill.report.plots import pareto_front

    points = [(1.0, 40.0), (1.0, 48.0), (3.0, 45.0), (10.0, 60.0), (400.0, 49.0), (2.0, 50.0)]
    assert pareto_front(points) == [(1.0, 48.0), (2.0, 50.0), (10.0, 60.0)]


def test_waveform_envelope_covers_the_whole_clip() -> None:
    import numpy as np

    from distill.report.plots import _envelope

    wave = np.zeros(64_000, dtype=np.float32)
    wave[-100:] = 1.0  # a click in the last few milliseconds of a 4 s clip
    t, lo, hi = _envelope(wave, 4.0)
    assert t[0] < 0.01 and t[-1] > 3.99 and hi[-1] == 1.0 and lo.min() == 0.0


def test_attention_plot_without_spans_multilabel_teacher_only(tmp_path: Path) -> None:
    import numpy as np

    from distill.report.build import load_samples
    from distill.report.plots import plot_attention
    from tests.report.fakes import write_samples

    write_samples(tmp_path, seed=0, multi_label=True, student=False)
    samples = load_samples(tmp_path / "attention_samples.npz")
    samples["spans"][:] = np.nan
    path = plot_attention(samples, "teacher only", tmp_path / "a.png")
    check_png(path)


def test_a_long_multilabel_clip_title_is_wrapped_and_keeps_every_class() -> None:
    import numpy as np

    from distill.report.plots import TITLE_CHARS, clip_title

    names = [f"Class_number_{i}" for i in range(8)]
    samples = {
        "class_names": np.array(names),
        "labels": np.ones((1, len(names)), dtype=np.float32),
        "predictions": np.array([3]),
    }
    title = clip_title(samples, 0)
    lines = title.split("\n")
    assert len(lines) > 1 and all(len(line) <= TITLE_CHARS for line in lines)
    assert all(name in title for name in names) and "top prediction: Class_number_3" in title
