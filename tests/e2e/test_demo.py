"""`distill demo` at a reduced size, end to end: data, teacher, cache, grid, QAT/export, report."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from distill.experiments.demo import DemoOptions, run_demo
from tests.helpers.report_html import check_png, parse


@pytest.mark.slow
def test_demo_end_to_end_at_reduced_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the demo recipes write data/ and runs/ under the cwd
    options = DemoOptions(
        per_word=6,
        per_unknown=2,
        speakers=20,
        students=("tc_resnet8", "att_rnn"),
        losses=("none", "temporal"),
        seeds=1,
        qat_epochs=1,
        workers=2,
        stream_hours=0.05,
    )
    result = run_demo(options, ["trainer.max_epochs=1", "trainer.progress_bar=false"])

    out = Path(result["csv"]).parent
    with open(result["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["student"], r["arm"]) for r in rows} == {
        (s, a) for s in options.students for a in options.losses
    }
    confusion = [f"confusion_{s}" for s in options.students]  # the test confusion matrices
    for name in ("scores", "score_vs_macs", "score_vs_latency", *confusion):
        check_png(out / f"{name}.png")
    html = Path(result["report"])
    assert html.is_file() and (out / "summary.md").is_file()
    methods = parse(html).tables["summary methods"]
    by_cell = {(r[0], r[1]): r[2] for r in methods[1:]}
    for row in rows:  # one seed: the report's mean equals the CSV's score, std 0
        mean, std = (float(v) for v in by_cell[(row["student"], row["arm"])].split(" ± "))
        assert mean == pytest.approx(100 * float(row["test_score"]), abs=0.005)
        assert std == 0.0
    assert statistics.fmean(float(r["latency_ms_b1"]) for r in rows) > 0
    deployed = Path(result["deployed"])
    assert (deployed / "export" / "student_int8_qat.onnx").is_file()
