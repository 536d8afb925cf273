"""The demo's streaming step on a tiny trained run: the best student's DET over negative
audio and `distill detect` on a long generated stream, as report figures."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from distill.experiments.demo import DemoOptions, stream_demo
from distill.report.build import write_report
from distill.report.results import write_rows
from tests.helpers.report_html import parse


@pytest.fixture()
def run_copy(tiny_run: dict, tmp_path: Path) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path / "compare" / "tc_resnet8" / "logit" / "seed0"
    shutil.copytree(tiny_run["run_dir"], run, ignore=shutil.ignore_patterns("stream_eval"))
    yield run
    torch.set_num_threads(before)


def test_stream_demo_gives_the_det_and_a_detection_plot(tiny_run, run_copy, capsys) -> None:
    out = run_copy.parents[2]
    step = stream_demo(run_copy, out, DemoOptions(stream_hours=0.005, detect_keywords=6))
    printed = capsys.readouterr().out
    assert "FRR (%) at FA/h" in printed and f"distill detect {run_copy}" in printed
    assert step["result"]["negative_hours"] > 0.005
    assert step["keywords"] == 6 and step["seconds"] > 6.0
    assert 0 <= step["hits"] <= 6
    (det, det_caption), (plot, plot_caption) = step["figures"]
    assert (
        det == run_copy / "stream_eval" / "det.png" and "0.5 false accepts per hour" in det_caption
    )
    assert plot.parent == out / "detect" / "plots" and "6 test keywords" in plot_caption
    for png in (det, plot):
        assert png.read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(step["csv"].open()))
    assert len(rows) == step["hits"] + step["false_accepts"]
    # the report shows both figures and the DET summary
    row = {"student": "tc_resnet8", "arm": "logit", "group": "method", "seed": 0,
           "metric": "acc", "test_score": 0.5, "params": 1, "macs": 1,
           "run_dir": str(run_copy)}  # fmt: skip
    write_rows(out / "results.csv", [row])
    html = write_report(tiny_run["cfg"], out, out / "results.csv", step["figures"],
                        step["markdown"])  # fmt: skip
    assert len(parse(html).images) >= 3
    assert "### Streaming (deployed student)" in (out / "summary.md").read_text()
