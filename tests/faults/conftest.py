"""A tiny recipe with a saved (untrained) teacher, its teacher cache and a feature cache, built
once for the fault-injection tests that damage copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml


def faults_recipe(bank: Path, tmp: Path) -> dict:
    """The recipe the fault tests run: 8 training and 4 evaluation clips of 1 s, a tiny
    in-house teacher with logit KD, fixed mixtures and a feature cache, one batch per epoch."""
    return {
        "description": "fault-injection tests",
        "name": "faults",
        "run_dir": str(tmp / "runs"),
        "data": {
            "name": "synth_kws",
            "root": str(bank),
            "clip_seconds": 1.0,
            "batch_size": 8,
            "train_variants": 2,
            "limit_train": 8,
            "limit_eval": 4,
            "cache_features": True,
            "feature_cache_dir": str(tmp / "feature_cache"),
        },
        "student": {"name": "tc_resnet8"},
        "teacher": {"kind": "inhouse", "path": str(tmp / "teacher"), "kwargs": {"preset": "tiny"}},
        "losses": {"logit_kd": {"weight": 0.5}},
        "trainer": {
            "max_epochs": 1,
            "progress_bar": False,
            "limit_train_batches": 1,
            "limit_val_batches": 1,
        },
        "logger": {"wandb": False},
    }


@pytest.fixture(scope="session")
def faults_setup(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"recipe": path, "teacher": dir, "feature_cache": dir, "tmp": dir}: caches complete."""
    from distill.caches.build import build_caches
    from distill.config import load_recipe
    from distill.data import build_datamodule
    from distill.pipeline.teach import new_teacher

    tmp = tmp_path_factory.mktemp("faults")
    recipe = tmp / "faults.yaml"
    recipe.write_text(yaml.safe_dump(faults_recipe(tiny_kws_bank, tmp)))
    cfg = load_recipe(str(recipe))
    new_teacher(cfg, build_datamodule(cfg.data).class_names).save_pretrained(cfg.teacher.path)
    build_caches(cfg, teacher=True, features=True)
    return {
        "recipe": recipe,
        "teacher": Path(cfg.teacher.path),
        "feature_cache": Path(cfg.data.feature_cache_dir),
        "tmp": tmp,
    }


def copy_of(folder: Path, tmp: Path) -> Path:
    """A copy of `folder` under `tmp` (to damage without touching the shared one)."""
    target = tmp / folder.name
    shutil.copytree(folder, target)
    return target
