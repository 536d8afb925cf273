"""`distill teach` onto a teacher.path that already holds a teacher is refused before any work,
naming the folder, unless `--overwrite`; before, the saved teacher was replaced without a word.
The demo still reuses a finished teacher stage and redoes an unfinished one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from distill.cli import main
from distill.experiments.demo import train_teacher
from distill.pipeline.results import TeachResult

from .conftest import copy_of


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def teach_args(setup: dict, tmp: Path, teacher: Path) -> list[str]:
    run_dir = tmp / "run"
    return ["teach", str(setup["recipe"]), f"teacher.path={teacher}", "--run-dir", str(run_dir)]


def test_teach_refuses_an_existing_teacher_path_unless_overwrite(
    faults_setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    teacher = copy_of(faults_setup["teacher"], tmp_path)
    before = snapshot(teacher)
    assert main(teach_args(faults_setup, tmp_path, teacher)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"distill: error: teacher.path {teacher} already holds files (cache, config.json, "
        "model.safetensors): distill teach would overwrite that teacher; pass --overwrite to "
        "replace it, or set teacher.path to a new folder"
    ]
    assert snapshot(teacher) == before and not (tmp_path / "run").exists()

    assert main([*teach_args(faults_setup, tmp_path, teacher), "--overwrite"]) == 0
    after = snapshot(teacher)
    assert after["model.safetensors"] != before["model.safetensors"]  # trained and saved
    assert TeachResult.read(teacher / "results.json").teacher_path == str(teacher)


def test_teach_refuses_a_teacher_path_that_is_a_file(
    faults_setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    taken = tmp_path / "teacher.bin"
    taken.write_text("not a folder")
    args = [*teach_args(faults_setup, tmp_path, taken), "--overwrite"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"distill: error: teacher.path {taken} is a file: give a folder to save the teacher to"
    ]


def test_demo_reuses_a_finished_teacher_and_redoes_an_unfinished_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished, unfinished = tmp_path / "clean", tmp_path / "noisy"
    for folder in (finished, unfinished):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
    TeachResult(
        recipe="demo_teacher_clean",
        teacher_path=str(finished),
        params=1,
        macs=1,
        clip_seconds=1.0,
        best_val=0.5,
        test={"test/acc": 0.5},
        epochs=1,
        wall_seconds=1.0,
        run_dir=str(tmp_path),
    ).write(finished / "results.json")
    calls: list[tuple[str, bool]] = []

    def fake_teach(cfg, run_dir=None, overwrite=False):
        calls.append((cfg.teacher.path, overwrite))
        return SimpleNamespace(test={"test/acc": 0.9})

    monkeypatch.setattr("distill.pipeline.teach.teach", fake_teach)
    stages = [
        OmegaConf.create({"name": n, "description": n, "teacher": {"path": str(p)}})
        for n, p in (("clean", finished), ("noisy", unfinished))
    ]
    train_teacher(stages, start=0.0)
    assert calls == [(str(unfinished), True)]
