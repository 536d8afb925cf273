"""Two CPU processes: the teacher cache built in shards under torchrun, then DDP training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill import teachers
from distill.caches.fingerprint import fingerprint
from distill.caches.teacher_cache import TeacherCache, build_cache, cache_dir
from distill.config import load_recipe
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.pipeline.artifacts import STUDENT_FILE
from distill.pipeline.evaluate import evaluate_checkpoint
from tests.helpers.checks import check_loss_terms


def run(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_sharded_cache_and_ddp_fit(tiny_kws_bank: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "ddp.yaml"
    recipe.write_text(yaml.safe_dump({
        "description": "ddp test", "name": "ddp", "run_dir": str(tmp_path / "runs"),
        "data": {"name": "synth_kws", "root": str(tiny_kws_bank), "clip_seconds": 1.0,
                 "batch_size": 8, "train_variants": 2},
        "student": {"name": "tc_resnet8"},
        "teacher": {"kind": "inhouse", "path": str(tmp_path / "teacher")},
        "losses": {"temporal_kd": {"weight": 0.25}, "logit_kd": {"weight": 0.5}},
        "trainer": {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu"},
        "logger": {"wandb": False},
    }))  # fmt: skip
    cfg = load_recipe(str(recipe))
    names = build_datamodule(cfg.data).class_names
    teachers.create("inhouse", preset="tiny", class_names=names).save_pretrained(
        tmp_path / "teacher"
    )

    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
    ]
    run([*torchrun, "-m", "distill", "cache", str(recipe)], cwd=tmp_path)
    sharded = TeacherCache(cache_dir(cfg), fingerprint(cfg, load_teacher_for(cfg)))
    for split in ("train", "val", "test"):
        assert sharded.has(split)
    # the merged shards hold the same records as a single-process build
    single_cfg = load_recipe(str(recipe), [f"teacher.path={tmp_path / 'single'}"])
    teachers.load_teacher(tmp_path / "teacher").save_pretrained(tmp_path / "single")
    single = build_cache(
        single_cfg, load_teacher_for(single_cfg), build_datamodule(cfg.data), splits=("train",)
    )
    ids = json.loads(sharded.paths("train")[1].read_text())["clip_ids"]
    assert sorted(ids) == sorted(json.loads(single.paths("train")[1].read_text())["clip_ids"])
    a, b = sharded.lookup("train", ids[:5]), single.lookup("train", ids[:5])
    assert (a.attention - b.attention).abs().max() < 1e-5

    run_dir = tmp_path / "ddp_run"
    run(
        [
            sys.executable,
            "-m",
            "distill",
            "fit",
            str(recipe),
            "--run-dir",
            str(run_dir),
            "trainer.devices=2",
            "trainer.strategy=ddp",
        ],
        cwd=tmp_path,
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 2
    check_loss_terms(results["test"], {"logit_kd": 0.5, "temporal_kd": 0.25}, "test")
    assert (run_dir / STUDENT_FILE).is_file()
    # every rank tests on the whole split: one process scores the best checkpoint the same
    scored = evaluate_checkpoint(results["best_checkpoint"], split="test")["metrics"]
    assert scored["test/acc"] == pytest.approx(results["test"]["test/acc"])
    assert scored["test/task"] == pytest.approx(results["test"]["test/task"], rel=1e-5)
