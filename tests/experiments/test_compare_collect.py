"""`distill compare --collect-only`: tabulate finished runs, list missing ones, train nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import distill.experiments.compare as compare
import distill.pipeline.fit
from distill.config import RecipeConfig
from distill.report.results import read_rows


def finished_run(run_dir: Path, score: float) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "monitor": "val/acc",
        "test": {"test/acc": score},
        "best_val": score + 0.01,
        "params": 65_000,
        "macs": 1_500_000,
        "epochs": 3,
        "wall_seconds": 10.0,
        "run_dir": str(run_dir),
    }
    (run_dir / "results.json").write_text(json.dumps(results))


@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("collect_only must not train")

    monkeypatch.setattr(distill.pipeline.fit, "fit", refuse)
    monkeypatch.setattr(compare, "student_latency", lambda path: 0.25)


def test_collect_only_tabulates_the_finished_runs_and_lists_the_rest(
    tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    out = tmp_path / "grid"
    finished_run(out / "tc_resnet8" / "none" / "seed0", 0.50)
    finished_run(out / "tc_resnet8" / "none" / "seed1", 0.60)
    finished_run(out / "tc_resnet8" / "temporal@0.1" / "seed0", 0.70)
    unfinished = out / "tc_resnet8" / "temporal@0.1" / "seed1"
    unfinished.mkdir(parents=True)
    (unfinished / "last.ckpt").write_text("partial")

    csv_path = compare.run_grid(
        cfg, ["tc_resnet8"], ["none", "temporal@0.1"], 2, out, collect_only=True
    )

    rows = read_rows(csv_path)
    got = {(r["arm"], r["seed"]): float(r["test_score"]) for r in rows}
    assert got == {("none", "0"): 0.50, ("none", "1"): 0.60, ("temporal@0.1", "0"): 0.70}
    assert all(r["latency_ms_b1"] == "0.25" for r in rows)
    printed = capsys.readouterr().out
    assert "1 run(s) not finished" in printed and str(unfinished) in printed
    assert (unfinished / "last.ckpt").is_file()  # an unfinished run is left alone


def test_collect_only_without_any_finished_run_names_the_folder(
    tmp_path: Path, no_training: None
) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty")):
        compare.run_grid(cfg, ["tc_resnet8"], ["none"], 1, tmp_path / "empty", collect_only=True)
    assert not (tmp_path / "empty" / "results.csv").exists()


def test_zero_seeds_is_refused_naming_the_option(tmp_path: Path, no_training: None) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    for collect_only in (False, True):
        with pytest.raises(ValueError, match="--seeds must be at least 1, given 0"):
            compare.run_grid(cfg, ["tc_resnet8"], ["none"], 0, tmp_path, collect_only=collect_only)
