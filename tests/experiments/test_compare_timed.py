"""`distill compare` over the per-step arms (docs/timed.md) on a tiny keyword bank: every arm
trains a frame-level student a few steps and saves the plain student; span arms are refused
before any work on data without manifest spans, where `teacher_timed` still runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from distill.teachers.base import TeacherOutput
from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher
from omegaconf import DictConfig, OmegaConf

import distill.experiments.compare as compare
from distill import students
from distill.caches.teacher_cache import TeacherCache
from distill.config import RecipeConfig
from distill.core.losses.arms import Arm
from distill.data import build_datamodule
from distill.errors import BadValueError
from distill.pipeline.artifacts import STUDENT_FILE, load_student
from distill.pipeline.fit import fit
from distill.report.results import read_rows
from tests.helpers.checks import check_logged_training_terms
from tests.helpers.recipes import tiny_recipe

TIMED_ARMS = ["maxpool", "teacher_timed", "span_timed", "shuffled_timed", "frame_logit"]


def streaming_recipe(root: Path, tmp: Path, name: str = "noisy_speech_commands") -> DictConfig:
    """The tiny recipe with a causal student, a stateful frontend, a few steps per run and an
    untrained tiny teacher (its rollout and per-token logits are what the arms read)."""
    cfg = tiny_recipe(root, tmp)
    cfg.data.name = name
    cfg.student.kwargs = {"causal": True}
    cfg.frontend.normalize = "none"
    cfg.trainer.limit_train_batches = 2.0  # batches (a whole number: a count)
    cfg.trainer.limit_val_batches = 1.0
    classes = build_datamodule(cfg.data).class_names
    SpectrogramTransformerTeacher.build(classes, preset="tiny").save_pretrained(cfg.teacher.path)
    return cfg


@pytest.fixture(scope="module")
def timed_grid(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("timed")
    cfg = streaming_recipe(tiny_kws_bank, tmp, name="synth_kws")
    out = tmp / "grid"
    csv_path = compare.run_grid(cfg, ["tc_resnet8"], ["clip", *TIMED_ARMS], 1, out)
    rnn_csv = compare.run_grid(cfg, ["gru"], ["teacher_timed"], 1, tmp / "rnn")
    return {"cfg": cfg, "out": out, "rows": read_rows(csv_path), "rnn": read_rows(rnn_csv)}


def test_every_timed_arm_trains_and_deploys_the_plain_student(timed_grid: dict) -> None:
    rows = {r["arm"]: r for r in timed_grid["rows"]}
    assert list(rows) == ["clip", *TIMED_ARMS]
    assert {r["group"] for a, r in rows.items() if a in ("span_timed", "shuffled_timed")} == {
        "control"
    }
    fresh = students.create("tc_resnet8", num_classes=12, n_features=40, causal=True)
    for arm, row in rows.items():
        run_dir = Path(row["run_dir"])
        model, _ = load_student(run_dir / STUDENT_FILE)
        assert list(model.state_dict()) == list(fresh.state_dict()), arm  # same in every arm
        check_logged_training_terms(run_dir, [] if arm == "clip" else ["timed"])
    (gru,) = timed_grid["rnn"]
    assert gru["arm"] == "teacher_timed"
    check_logged_training_terms(Path(gru["run_dir"]), ["timed"])


def test_the_arms_set_the_per_step_target(timed_grid: dict) -> None:
    cfg = timed_grid["cfg"]
    assert Arm("clip").overrides(cfg) == Arm("none").overrides(cfg)
    targets = {
        arm: dict(o.split("=", 1) for o in Arm(arm).overrides(cfg))["losses.timed.target"]
        for arm in TIMED_ARMS
    }
    assert targets == {
        "maxpool": "maxpool",
        "teacher_timed": "teacher",
        "span_timed": "span",
        "shuffled_timed": "shuffled",
        "frame_logit": "frame_logit",
    }


@pytest.fixture()
def weak_bank(tiny_kws_bank: Path, tmp_path: Path) -> Path:
    """The keyword bank with clip labels only: its manifest (the speech spans) dropped."""
    root = tmp_path / "weak"
    shutil.copytree(tiny_kws_bank, root)
    (root / "manifest.csv").unlink()
    return root


def test_span_arms_are_refused_before_any_work_on_clip_labels_only(
    weak_bank: Path, tmp_path: Path
) -> None:
    cfg = streaming_recipe(weak_bank, tmp_path)
    out = tmp_path / "grid"
    for arms, named in ((["clip", "span_timed"], "span_timed"), (["span", "logit"], "span")):
        with pytest.raises(BadValueError) as err:
            compare.run_grid(cfg, ["tc_resnet8"], arms, 1, out)
        message = str(err.value)
        assert f"arm {named!r} needs ground-truth spans" in message
        assert str(weak_bank / "manifest.csv") in message and "\n" not in message
    assert not out.exists()  # nothing trained, no cache built
    assert not (Path(cfg.teacher.path) / "cache").exists()
    compare.check_spans(cfg, [Arm("teacher_timed"), Arm("maxpool")])  # these need no spans


def test_fit_refuses_span_timed_and_trains_teacher_timed_on_clip_labels_only(
    weak_bank: Path, tmp_path: Path
) -> None:
    cfg = streaming_recipe(weak_bank, tmp_path)
    cfg.teacher.cache = False  # the teacher online: no cache to build
    cfg.losses.timed.weight = 1.0
    cfg.losses.timed.target = "span"
    with pytest.raises(BadValueError, match=r"losses\.timed\.target=span needs ground-truth spans"):
        fit(cfg)
    cfg.losses.timed.target = "teacher"
    results = fit(cfg, run_dir=tmp_path / "teacher_timed")
    check_logged_training_terms(Path(results.run_dir), ["timed"])


def test_frame_logit_is_refused_before_training_on_a_cache_without_per_token_logits(
    tmp_path: Path,
) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    old = TeacherCache(tmp_path / "cache", {"teacher": "t"})
    plain = TeacherOutput(torch.zeros(2, 4), torch.full((2, 5), 0.2))  # no frame_logits
    old.write("train", [(["a", "b"], plain)], total=2)
    with pytest.raises(BadValueError, match=r"arm 'frame_logit' needs the teacher's per-token"):
        compare.check_frame_logits(cfg, [Arm("clip"), Arm("frame_logit")], old)
    compare.check_frame_logits(cfg, [Arm("teacher_timed")], old)  # the rollout is there
