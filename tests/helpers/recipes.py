"""A tiny recipe over a tiny dataset: what the training tests of every layer start from."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from distill.config import RecipeConfig


def tiny_recipe(root: Path, tmp: Path, **losses: float) -> DictConfig:
    """TC-ResNet8 for one epoch on the keyword bank at `root`, a tiny in-house teacher saved
    under `tmp/teacher`, runs under `tmp/runs`; `losses` set term weights (e.g. logit_kd=0.5)."""
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "tiny"
    cfg.run_dir = str(tmp / "runs")
    cfg.data.root = str(root)
    cfg.data.clip_seconds = 2.0
    cfg.data.batch_size = 16
    cfg.data.train_variants = 2
    cfg.student.name = "tc_resnet8"
    cfg.teacher.kind = "inhouse"
    cfg.teacher.path = str(tmp / "teacher")
    cfg.teacher.kwargs = {"preset": "tiny"}
    cfg.trainer.max_epochs = 1
    cfg.trainer.progress_bar = False
    cfg.logger.wandb = False
    for name, weight in losses.items():
        cfg.losses[name].weight = weight
    return cfg
