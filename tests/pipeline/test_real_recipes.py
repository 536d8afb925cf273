"""The real-data recipes end to end on data written in Speech Commands' layout, with a tiny
wav2vec 2.0 teacher built offline: fine-tune it (`teach`), cache it, distil a student."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill.caches.teacher_cache import build_cache
from distill.config import load_recipe
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach
from tests.data.fakes import make_speech_commands
from tests.helpers.checks import check_loss_terms

transformers = pytest.importorskip("transformers")

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "dog"]


def tiny_wav2vec2(path: Path) -> None:
    """A random 2-layer wav2vec 2.0 classifier with 3 labels, saved like a hub checkpoint."""
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        classifier_proj_size=16, num_labels=3,
    )  # fmt: skip
    transformers.Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(
        path
    )


def test_noisy_speech_commands_with_a_wav2vec2_teacher(tmp_path: Path) -> None:
    root = tmp_path / "speech_commands_v0.02"
    make_speech_commands(root, WORDS, [f"{i:08x}" for i in range(5)], noise_files=2)
    tiny_wav2vec2(tmp_path / "w2v2")
    overrides = [
        f"data.root={root}", f"teacher.path={tmp_path / 'teacher'}", f"run_dir={tmp_path / 'runs'}",
        "data.clip_seconds=2.0", "data.train_variants=2", "data.batch_size=8",
        "trainer.max_epochs=1", "trainer.progress_bar=false", "logger.wandb=false",
    ]  # fmt: skip
    teach_cfg = load_recipe("noisy_sc2_wav2vec2", overrides)
    teach_cfg.teacher.kwargs["init_from"] = str(tmp_path / "w2v2")
    results = teach(teach_cfg)
    cfg = load_recipe("noisy_sc2_wav2vec2", overrides)
    teacher = load_teacher_for(cfg)
    assert teacher.class_names == build_datamodule(cfg.data).class_names  # the new 12-class head
    assert results.params == sum(p.numel() for p in teacher.parameters())  # of the saved one
    build_cache(cfg, teacher, build_datamodule(cfg.data))
    fitted = fit(cfg)
    check_loss_terms(fitted.test, {"temporal_kd": 0.25}, "test")  # the recipe's one KD term
    assert fitted.student == "crnn"
