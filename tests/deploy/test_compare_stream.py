"""`distill compare --stream-eval`: the streaming metric of every finished run in results.csv
and in the report (FRR at 0.5 FA/h per arm, DET curves per arm); off by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import distill.experiments.compare as compare
from distill.report.build import write_report
from distill.report.results import RESULT_COLUMNS, STREAM_COLUMNS, read_rows
from tests.helpers.report_html import parse

SCORES = ["balanced_acc", "macro_f1"]  # the single-label metrics besides accuracy


@pytest.fixture()
def grid(tiny_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A grid folder holding two finished runs (copies of the tiny run) of tc_resnet8."""
    monkeypatch.setattr(compare, "student_latency", lambda path: 0.25)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "grid"
    for arm in ("none", "logit"):
        run = out / "tc_resnet8" / arm / "seed0"
        shutil.copytree(tiny_run["run_dir"], run, ignore=shutil.ignore_patterns("stream_eval"))
        results = json.loads((run / "results.json").read_text())
        (run / "results.json").write_text(json.dumps({**results, "run_dir": str(run)}))
    yield out
    torch.set_num_threads(before)


def test_stream_eval_adds_columns_and_the_report_shows_them(tiny_run, grid, capsys) -> None:
    cfg = tiny_run["cfg"]
    plain = compare.run_grid(cfg, ["tc_resnet8"], ["none", "logit"], 1, grid, collect_only=True)
    assert list(read_rows(plain)[0]) == RESULT_COLUMNS + SCORES  # off: no streaming columns
    assert not (grid / "tc_resnet8" / "none" / "seed0" / "stream_eval").exists()

    csv_path = compare.run_grid(cfg, ["tc_resnet8"], ["none", "logit"], 1, grid,
                                collect_only=True, stream_eval_hours=0.005)  # fmt: skip
    assert "streaming metric of" in capsys.readouterr().out
    rows = read_rows(csv_path)
    assert list(rows[0]) == RESULT_COLUMNS + SCORES + STREAM_COLUMNS
    for row in rows:
        result = Path(row["run_dir"]) / "stream_eval" / "stream_eval.json"
        frr = json.loads(result.read_text())["at_fa_per_hour"]["0.5"]["pooled"]["frr"]
        assert float(row["frr_at_0.5_fa_h"]) == pytest.approx(frr)
        assert float(row["stream_negative_hours"]) > 0.005
    html = write_report(cfg, grid, csv_path)
    assert (grid / "det_arms.png").read_bytes()[:4] == b"\x89PNG"
    methods = parse(html).tables["summary methods"]
    assert methods[0][-1] == "FRR at 0.5 FA/h (%)"
    by_arm = {r[1]: r[-1] for r in methods[1:]}
    frr = {r["arm"]: 100 * float(r["frr_at_0.5_fa_h"]) for r in rows}
    for arm, cell in by_arm.items():
        assert float(cell.split(" ± ")[0]) == pytest.approx(frr[arm], abs=0.05)
    summary = (grid / "summary.md").read_text()
    assert "FRR at 0.5 FA/h (%)" in summary
    assert "### Streaming metric" in summary and "FRR at 0.1 FA/h (%)" in summary
