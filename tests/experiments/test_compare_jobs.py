"""`distill compare --jobs N`: runs trained side by side in their own processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

import distill.experiments.compare as compare
from distill.experiments.grid import threads_per_job, train_runs
from distill.report.results import read_rows
from tests.helpers.recipes import tiny_recipe


def student_only_recipe(root: Path, tmp: Path) -> DictConfig:
    cfg = tiny_recipe(root, tmp)
    cfg.teacher.kind = "none"
    cfg.data.cache_features = True  # built once by the grid before the workers start
    return cfg


def test_side_by_side_runs_match_the_same_runs_trained_one_after_another(
    tiny_kws_bank: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg = student_only_recipe(tiny_kws_bank, tmp_path)
    side_by_side = compare.run_grid(cfg, ["tc_resnet8"], ["none"], 2, tmp_path / "jobs2", jobs=2)
    printed = capfd.readouterr().out
    assert "2 at a time" in printed
    assert "tc_resnet8 none seed 1: epoch 1/1 val/acc" in printed  # a worker's epoch line

    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(2, threads))  # the workers' share, for equal sums
    try:
        alone = compare.run_grid(cfg, ["tc_resnet8"], ["none"], 2, tmp_path / "jobs1", jobs=1)
    finally:
        torch.set_num_threads(threads)

    rows = read_rows(side_by_side)
    assert [r["seed"] for r in rows] == ["0", "1"]
    for row, ref in zip(rows, read_rows(alone), strict=True):
        assert Path(row["run_dir"]).parent.parent.parent == tmp_path / "jobs2"
        assert float(row["test_score"]) == pytest.approx(float(ref["test_score"]), abs=1e-6)
        assert float(row["best_val"]) == pytest.approx(float(ref["best_val"]), abs=1e-6)
    assert len(list((Path(cfg.run_dir) / "feature_cache").iterdir())) == 1


def test_a_failed_run_is_reported_by_name_after_the_others_finish(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    cfg = student_only_recipe(tiny_kws_bank, tmp_path)
    out = tmp_path / "grid"
    with pytest.raises(RuntimeError, match=r"1 of 2 run\(s\) failed: no_such_student none seed 0"):
        compare.run_grid(cfg, ["tc_resnet8", "no_such_student"], ["none"], 1, out, jobs=2)
    results = json.loads((out / "tc_resnet8" / "none" / "seed0" / "results.json").read_text())
    assert results["student"] == "tc_resnet8"
    assert not (out / "no_such_student" / "none" / "seed0" / "results.json").exists()


def test_jobs_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--jobs must be at least 1, given 0"):
        train_runs([], jobs=0)
    cfg = student_only_recipe(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="--jobs must be at least 1, given 0"):
        compare.run_grid(cfg, ["tc_resnet8"], ["none"], 1, tmp_path / "grid", jobs=0)


def test_threads_are_shared_out_and_never_zero() -> None:
    assert threads_per_job(2, 16) == 8
    assert threads_per_job(3, 2) == 1
