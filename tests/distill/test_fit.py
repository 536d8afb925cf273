"""teach -> cache -> fit on a tiny keyword bank, and what fit leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from distill import students
from distill.caches.records import StaleCacheError
from distill.caches.teacher_cache import build_cache
from distill.config import RecipeConfig
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.pipeline.artifacts import load_student
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach


def tiny_recipe(root: Path, tmp: Path, **losses: float) -> DictConfig:
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


@pytest.fixture(scope="module")
def trained(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("fit")
    cfg = tiny_recipe(tiny_kws_bank, tmp, logit_kd=0.5, temporal_kd=0.25)
    teach_results = teach(cfg)
    build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data))
    results = fit(cfg)
    return {"cfg": cfg, "teach": teach_results, "fit": results}


def test_teacher_is_saved_and_reports_attention(trained: dict) -> None:
    cfg = trained["cfg"]
    assert (Path(cfg.teacher.path) / "config.json").is_file()
    test = trained["teach"]["test"]
    assert 0.0 <= test["test/acc"] <= 1.0
    assert "test/teacher_attention_in_span" in test


def test_fit_writes_results_and_logs_every_term(trained: dict) -> None:
    results = trained["fit"]
    run_dir = Path(results["run_dir"])
    assert json.loads((run_dir / "results.json").read_text()) == results
    for key in ("test/acc", "test/task", "test/logit_kd", "test/temporal_kd"):
        assert key in results["test"]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    metrics = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/temporal_kd_epoch" in metrics and "train/logit_kd_epoch" in metrics


def test_saved_student_is_the_plain_student(trained: dict) -> None:
    run_dir = Path(trained["fit"]["run_dir"])
    model, info = load_student(run_dir / "student.pt")
    fresh = students.create("tc_resnet8", num_classes=12, n_features=40)
    assert list(model.state_dict()) == list(fresh.state_dict())
    assert info["class_names"][-2:] == ["_unknown_", "_silence_"] or len(info["class_names"]) == 12
    assert all(not m._forward_hooks for m in model.modules())
    logits = model(torch.randn(2, 40, 201))
    assert logits.shape == (2, 12)


def test_stale_cache_is_refused(trained: dict, tmp_path: Path) -> None:
    cfg = trained["cfg"].copy()
    teacher = load_teacher_for(cfg)
    with torch.no_grad():
        next(teacher.parameters()).add_(1.0)
    changed = Path(tmp_path) / "teacher"
    teacher.save_pretrained(changed)
    # the cache of the original teacher, read with the changed teacher's fingerprint
    cache_src = Path(cfg.teacher.path) / "cache"
    (changed / "cache").symlink_to(cache_src, target_is_directory=True)
    cfg.teacher.path = str(changed)
    with pytest.raises(StaleCacheError, match=r"is stale: teacher changed \(cached \w+, now \w+\)"):
        fit(cfg)


def test_cache_needs_fixed_training_audio(trained: dict) -> None:
    cfg = trained["cfg"].copy()
    cfg.data.train_variants = 0
    with pytest.raises(ValueError, match="set data.train_variants=K"):
        build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data), splits=("train",))


def test_span_control_refuses_data_without_spans(tmp_path: Path) -> None:
    from tests.data.fakes import make_fsd50k

    root = tmp_path / "fsd"
    vocab = ["Bark", "Music"]
    make_fsd50k(
        root,
        vocab,
        [("1", ["Bark"], "train", 1.0), ("2", ["Music"], "val", 1.0)],
        [("3", ["Bark", "Music"], 1.0)],
        sr=16000,
    )
    cfg = tiny_recipe(root, tmp_path, temporal_kd=0.25)
    cfg.data.name, cfg.data.task, cfg.data.classes = "fsd50k", "multi_label", "all"
    cfg.data.train_variants = 0
    cfg.teacher.kind = "none"
    cfg.losses.temporal_kd.target = "span"
    with pytest.raises(ValueError, match="target=span needs ground-truth spans, but the data in"):
        fit(cfg)


def test_eval_scores_a_checkpoint_like_fit_did(trained: dict) -> None:
    from distill.pipeline.evaluate import evaluate_checkpoint

    results = trained["fit"]
    scored = evaluate_checkpoint(results["best_checkpoint"], split="test")
    assert scored["metrics"]["test/acc"] == pytest.approx(results["test"]["test/acc"])
    val = evaluate_checkpoint(results["best_checkpoint"], split="val")
    assert val["metrics"]["val/acc"] == pytest.approx(results["best_val"])
