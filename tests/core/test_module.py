"""DistillModule: gradient flow of temporal KD into the student, taps, resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from distill.teachers.base import TeacherOutput
from omegaconf import OmegaConf
from torch import nn

from distill.config import RecipeConfig, load_recipe
from distill.core.module import DistillModule
from distill.pipeline.artifacts import STUDENT_FILE
from distill.pipeline.fit import fit


class FixedTeacher(nn.Module):
    """A stand-in teacher whose attention is all on the last quarter of the clip."""

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        b = waveform.shape[0]
        attention = torch.zeros(b, 40)
        attention[:, 30:] = 0.1
        return TeacherOutput(torch.zeros(b, 12), attention, torch.zeros(40, 2))


def module_with(**weights: float) -> DistillModule:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = "/unused"
    cfg.student.name = "tc_resnet8"
    for name, w in weights.items():
        cfg.losses[name].weight = w
    return DistillModule(
        cfg,
        num_classes=12,
        task="single_label",
        class_names=[str(i) for i in range(12)],
        clip_seconds=1.0,
    )


def test_temporal_kd_gradient_reaches_tapped_layers_only() -> None:
    module = module_with(temporal_kd=1.0)
    module.set_teacher_source(FixedTeacher())
    batch = {
        "waveform": torch.randn(3, 16000),
        "label": torch.tensor([0, 1, 2]),
        "clip_id": ["a", "b", "c"],
    }
    _, _, terms = module._step(batch, "train")
    terms["temporal_kd"].backward()
    student = module.student
    assert student.conv0[0][0].weight.grad.abs().sum() > 0  # before the tap: reached
    assert student.blocks[-1].conv2[0].weight.grad.abs().sum() > 0
    assert student.fc.weight.grad is None  # after the tap: the KD term does not touch it
    assert module.aux.terms["temporal_kd"].head.query.weight.grad.abs().sum() > 0


def test_training_only_parts_stay_out_of_the_student() -> None:
    module = module_with(temporal_kd=0.5, hint=0.0)
    student_keys = set(module.student_state_dict())
    assert not any("aux" in k or "query" in k for k in student_keys)
    assert any(k.startswith("aux.") for k in module.state_dict())
    module.detach_taps()
    assert all(not m._forward_hooks for m in module.student.modules())


def test_missing_teacher_is_an_error() -> None:
    module = module_with(logit_kd=1.0)
    batch = {
        "waveform": torch.randn(2, 16000),
        "label": torch.tensor([0, 1]),
        "clip_id": ["a", "b"],
    }
    with pytest.raises(
        RuntimeError, match="the recipe's losses need a teacher but none is attached"
    ):
        module._step(batch, "train")


class StepAtStart(pl.Callback):
    def __init__(self) -> None:
        self.step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.step = trainer.global_step


def test_resume_after_kill_continues_from_last_checkpoint(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "plain.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "description": "resume test",
                "name": "resume",
                "run_dir": str(tmp_path / "runs"),
                "data": {
                    "name": "synth_kws",
                    "root": str(tiny_kws_bank),
                    "clip_seconds": 1.0,
                    "batch_size": 4,
                },
                "student": {"name": "tc_resnet8"},
                "trainer": {"max_epochs": 3, "progress_bar": False},
                "logger": {"wandb": False},
            }
        )
    )
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distill",
            "fit",
            str(recipe),
            "--run-dir",
            str(run_dir),
            "--checkpoint-every",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last.is_file(), "no checkpoint appeared before the kill"
    assert not (run_dir / "results.json").exists(), "the run finished before it could be killed"
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert killed_at >= 2

    probe = StepAtStart()
    results = fit(load_recipe(str(recipe)), run_dir=run_dir, resume=True, extra_callbacks=[probe])
    assert probe.step is not None and probe.step >= killed_at
    assert results.epochs == 3
    assert (run_dir / STUDENT_FILE).is_file()
