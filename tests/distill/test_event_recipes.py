"""The shipped sound-event recipes end to end on a tiny `synth-events` set: teach the
multi-label teacher, cache it and the features, distil TC-ResNet8 with both KD losses."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.caches.teacher_cache import build_cache
from distill.config import load_recipe
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.data.synth.events import synth_events
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach


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
    return {"teach": taught, "fit": fit(cfg), "cfg": cfg}


def test_event_teacher_scores_map_and_attention_in_event_spans(event_runs: dict) -> None:
    test = event_runs["teach"]["test"]
    assert 0.0 <= test["test/mAP"] <= 1.0
    assert 0.0 <= test["test/teacher_attention_in_span"] <= 1.0


def test_event_student_trains_from_both_caches_with_every_term(event_runs: dict) -> None:
    test = event_runs["fit"]["test"]
    assert 0.0 <= test["test/mAP"] <= 1.0
    for term in ("test/task", "test/logit_kd", "test/temporal_kd"):
        assert term in test and test[term] >= 0.0, term
    run_dir = Path(event_runs["cfg"].run_dir)
    assert any((run_dir / "feature_cache").iterdir()), "the event features were not cached"
