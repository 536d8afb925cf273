"""Bad recipe values of the issue's probe table: each is refused by `distill fit` before any work
(the pipeline is never entered, no run directory is made) with one line naming the key, the
value and the range. Before, they were accepted (a NaN KD weight switched KD off, a negative task
weight maximised the loss), failed late with torch's message, or were reported as a stale cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.cli import main


def refuse(setup: dict, override: str, monkeypatch: pytest.MonkeyPatch, capsys) -> str:
    """Run `distill fit RECIPE override` with the pipeline replaced by a tripwire; return the one
    error line after checking that nothing started."""
    started: list[str] = []
    monkeypatch.setattr("distill.pipeline.fit.fit", lambda *a, **k: started.append("fit"))
    run_dir = setup["tmp"] / "never"
    rc = main(["fit", str(setup["recipe"]), override, "--run-dir", str(run_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not started and not run_dir.exists()
    assert len(lines) == 1 and lines[0].startswith("distill: error: "), lines
    return lines[0]


def test_nan_kd_weight_is_refused_not_switched_off(faults_setup, monkeypatch, capsys) -> None:
    line = refuse(faults_setup, "losses.logit_kd.weight=.nan", monkeypatch, capsys)
    assert line == (
        "distill: error: key 'losses.logit_kd.weight' must be a finite number >= 0, given nan"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "losses.task.weight=-1",
            "key 'losses.task.weight' must be a finite number >= 0, given -1.0",
        ),
        (
            "trainer.gradient_clip_val=-1",
            "key 'trainer.gradient_clip_val' must be a finite number >= 0, given -1.0",
        ),
        ("data.limit_train=-5", "key 'data.limit_train' must be an integer >= 0, given -5"),
    ],
)
def test_negative_weight_clip_and_count_are_refused(
    faults_setup, monkeypatch, capsys, override: str, expected: str
) -> None:
    assert refuse(faults_setup, override, monkeypatch, capsys) == f"distill: error: {expected}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "losses.temporal_kd.weight=.inf",
            "key 'losses.temporal_kd.weight' must be a finite number >= 0, given inf",
        ),
        ("optim.lr=-1", "key 'optim.lr' must be a finite number > 0, given -1.0"),
        ("optim.lr=nan", "key 'optim.lr' must be a finite number > 0, given nan"),
        (
            "optim.weight_decay=-1",
            "key 'optim.weight_decay' must be a finite number >= 0, given -1.0",
        ),
    ],
)
def test_inf_weight_bad_lr_and_decay_fail_before_set_up_naming_the_key(
    faults_setup, monkeypatch, capsys, override: str, expected: str
) -> None:
    assert refuse(faults_setup, override, monkeypatch, capsys) == f"distill: error: {expected}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.clip_seconds=0", "key 'data.clip_seconds' must be a finite number > 0, given 0.0"),
        ("data.sample_rate=0", "key 'data.sample_rate' must be an integer > 0, given 0"),
    ],
)
def test_zero_clip_and_sample_rate_are_named(
    faults_setup, monkeypatch, capsys, override: str, expected: str
) -> None:
    assert refuse(faults_setup, override, monkeypatch, capsys) == f"distill: error: {expected}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.snr_db=[15,-5]", "key 'data.snr_db' must be an ordered pair [low, high]"),
        ("data.snr_db=[5]", "key 'data.snr_db' must be an ordered pair [low, high]"),
        ("data.train_variants=-1", "key 'data.train_variants' must be an integer >= 0, given -1"),
    ],
)
def test_bad_snr_and_variants_with_a_teacher_cache_are_not_called_stale(
    faults_setup, capsys, override: str, expected: str
) -> None:
    """The real pipeline, with complete teacher and feature caches for the recipe on disk."""
    teacher_cache = next((faults_setup["teacher"] / "cache").iterdir())
    assert sorted(p.name for p in teacher_cache.glob("*.json")) == [
        "test.json",
        "train.json",
        "val.json",
    ]
    run_dir: Path = faults_setup["tmp"] / "never"
    rc = main(["fit", str(faults_setup["recipe"]), override, "--run-dir", str(run_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not run_dir.exists()
    assert len(lines) == 1 and lines[0].startswith(f"distill: error: {expected}"), lines
    assert "stale" not in lines[0]
