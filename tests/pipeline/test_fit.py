"""teach -> cache -> fit on a tiny keyword bank, and what fit leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill import students
from distill.caches.records import StaleCacheError
from distill.caches.teacher_cache import build_cache
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.pipeline.artifacts import STUDENT_FILE, load_student
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach
from tests.helpers.checks import check_logged_training_terms, check_loss_terms
from tests.helpers.recipes import tiny_recipe

KWS_CLASSES = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
KD_WEIGHTS = {"logit_kd": 0.5, "temporal_kd": 0.25}
TEACHER_EPOCHS = 10  # the tiny teacher needs them to get well above chance on the tones


@pytest.fixture(scope="module")
def trained(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("fit")
    cfg = tiny_recipe(tiny_kws_bank, tmp, **KD_WEIGHTS)
    teach_cfg = cfg.copy()
    teach_cfg.trainer.max_epochs = TEACHER_EPOCHS
    teach_results = teach(teach_cfg)
    build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data))
    results = fit(cfg)
    return {"cfg": cfg, "teach": teach_results, "fit": results}


def test_teacher_is_saved_learns_and_attends_to_the_words(trained: dict) -> None:
    teacher_dir = Path(trained["cfg"].teacher.path)
    assert (teacher_dir / "config.json").is_file()
    assert json.loads((teacher_dir / "results.json").read_text()) == trained["teach"].to_dict()
    assert trained["teach"].epochs == TEACHER_EPOCHS
    test = trained["teach"].test
    # 12 classes (chance 1/12); every word is a tone of its own pitch
    assert test["test/acc"] > 3 / 12
    # a word fills 0.5 s of a 2 s clip: a random attention argmax lands in it 1 time in 4
    assert test["test/teacher_attention_in_span"] > 0.5


def test_fit_writes_results_and_logs_every_term(trained: dict) -> None:
    results = trained["fit"]
    run_dir = Path(results.run_dir)
    assert json.loads((run_dir / "results.json").read_text()) == results.to_dict()
    assert "test/acc" in results.test
    check_loss_terms(results.test, KD_WEIGHTS, "test")
    check_logged_training_terms(run_dir, list(KD_WEIGHTS))
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


def test_saved_student_is_the_plain_student(trained: dict) -> None:
    run_dir = Path(trained["fit"].run_dir)
    model, info = load_student(run_dir / STUDENT_FILE)
    fresh = students.create("tc_resnet8", num_classes=12, n_features=40)
    assert list(model.state_dict()) == list(fresh.state_dict())
    assert info["class_names"] == [*KWS_CLASSES, "_unknown_", "_silence_"]
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
    scored = evaluate_checkpoint(results.best_checkpoint, split="test")["metrics"]
    assert scored["test/acc"] == pytest.approx(results.test["test/acc"])
    assert scored["test/task"] == pytest.approx(results.test["test/task"], rel=1e-5)
    val = evaluate_checkpoint(results.best_checkpoint, split="val")["metrics"]
    assert val["val/acc"] == pytest.approx(results.best_val)
