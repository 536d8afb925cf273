"""The shipped sound-event recipes end to end on a tiny `synth-events` set: teach the
multi-label teacher, cache it and the features, distil TC-ResNet8 with both KD losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from distill import teachers
from distill.caches.teacher_cache import build_cache, cache_dir
from distill.config import load_recipe
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.data.synth.events import synth_events
from distill.pipeline.evaluate import evaluate_checkpoint
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach
from tests.helpers.checks import check_logged_training_terms, check_loss_terms


@pytest.fixture(scope="module")
def event_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("events")
    root = tmp / "synth_events"
    synth_events(root, clips=40, clip_seconds=2.0, classes=6, seed=1, workers=1, soundfont="none")
    common = [
        f"data.root={root}", f"run_dir={tmp / 'runs'}", f"teacher.path={tmp / 'teacher'}",
        "data.clip_seconds=2.0", "data.batch_size=8", "trainer.max_epochs=1",
        "trainer.progress_bar=false",
    ]  # fmt: skip
    teacher_cfg = load_recipe("events_teacher", [*common, "teacher.kwargs.preset=tiny"])
    taught = teach(teacher_cfg)
    cfg = load_recipe("events_tc_resnet8", common)
    build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data))
    return {"teach": taught, "fit": fit(cfg), "cfg": cfg, "teacher_cfg": teacher_cfg}


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Mean precision at the rank of each positive, ranking by score (no ties here)."""
    hits = positive[scores.argsort(descending=True)]
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


@torch.no_grad()
def scores_of_saved_teacher(cfg: DictConfig) -> dict[str, float]:
    """Macro mAP and argmax-in-span fraction (the argmax bin's centre inside an event) of the
    teacher saved at `teacher.path`, on the test split, worked out here from its outputs."""
    teacher = teachers.load_teacher(cfg.teacher.path).eval()
    logits, labels, inside, has_span = [], [], [], []
    for batch in build_datamodule(cfg.data).dataloader("test"):
        out = teacher(batch["waveform"])
        steps = out.attention.shape[-1]
        centre = (out.attention.argmax(-1) + 0.5) * cfg.data.clip_seconds / steps
        onset, offset = batch["spans"][..., 0], batch["spans"][..., 1]
        inside.append(((centre[:, None] >= onset) & (centre[:, None] <= offset)).any(-1))
        has_span.append(~onset.isnan().all(-1))
        logits.append(out.logits)
        labels.append(batch["label"])
    logits, labels = torch.cat(logits), torch.cat(labels)
    present = [c for c in range(labels.shape[1]) if labels[:, c].any()]
    aps = [average_precision(logits[:, c], labels[:, c]) for c in present]
    in_span = float(torch.cat(inside)[torch.cat(has_span)].float().mean())
    return {"test/mAP": sum(aps) / len(aps), "test/teacher_attention_in_span": in_span}


def test_event_teacher_reports_the_scores_of_the_teacher_it_saved(event_runs: dict) -> None:
    reported = event_runs["teach"].test
    by_hand = scores_of_saved_teacher(event_runs["teacher_cfg"])
    assert reported["test/mAP"] == pytest.approx(by_hand["test/mAP"], rel=1e-5)
    assert reported["test/teacher_attention_in_span"] == pytest.approx(
        by_hand["test/teacher_attention_in_span"]
    )


def test_event_student_trains_from_both_caches_with_every_term(event_runs: dict) -> None:
    cfg, results = event_runs["cfg"], event_runs["fit"]
    weights = {name: float(cfg.losses[name].weight) for name in ("logit_kd", "temporal_kd")}
    assert all(w > 0 for w in weights.values()), weights  # the recipe distils with both
    check_loss_terms(results.test, weights, "test")
    check_logged_training_terms(Path(results.run_dir), list(weights))
    assert any(cache_dir(cfg).glob("test*")), "the teacher outputs were not cached"
    run_dir = Path(cfg.run_dir)
    assert any((run_dir / "feature_cache").iterdir()), "the event features were not cached"


def test_eval_of_the_event_student_equals_its_fit_score(event_runs: dict) -> None:
    results = event_runs["fit"]
    scored = evaluate_checkpoint(results.best_checkpoint, split="test")["metrics"]
    assert scored["test/mAP"] == pytest.approx(results.test["test/mAP"], rel=1e-5)
    assert scored["test/task"] == pytest.approx(results.test["test/task"], rel=1e-5)
