"""The TeacherSource protocol: the teacher run online and the teacher cache give a DistillModule
the same tensors for the same clips (on a tiny random teacher)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from distill import teachers
from distill.caches.teacher_cache import TeacherCache
from distill.config import RecipeConfig
from distill.core.module import DistillModule
from distill.core.teacher_source import OnlineTeacher, TeacherSource
from distill.errors import UsageError

FP = {"teacher": "t", "rollout": "r", "data": "d", "crop": "c"}
NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def teacher() -> teachers.Teacher:
    torch.manual_seed(0)
    return teachers.create("inhouse", preset="tiny", class_names=NAMES).freeze()


def clips(n: int, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "waveform": torch.randn(n, 16000, generator=gen),
        "label": torch.arange(n) % len(NAMES),
        "clip_id": [f"clip{i}" for i in range(n)],
    }


def module(teacher_dim: int) -> DistillModule:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = "/unused"
    cfg.student.name = "tc_resnet8"
    cfg.losses.logit_kd.weight = 0.5
    cfg.losses.temporal_kd.weight = 0.25
    cfg.losses.hint.weight = 0.1
    return DistillModule(cfg, len(NAMES), "single_label", NAMES, 1.0, teacher_dim=teacher_dim)


def cache_of(
    teacher: teachers.Teacher, batch: dict, directory: Path, split: str = "train"
) -> TeacherCache:
    """The teacher's outputs of `batch`, computed as one batch, written to a cache."""

    def chunks():
        with torch.no_grad():
            yield batch["clip_id"], teacher(batch["waveform"])

    cache = TeacherCache(directory, FP)
    cache.write(split, chunks(), total=len(batch["clip_id"]), with_hidden=True)
    return TeacherCache(directory, FP)


def test_online_and_cached_sources_give_the_same_tensors(teacher, tmp_path: Path) -> None:
    batch = clips(5)
    online, cached = OnlineTeacher(teacher), cache_of(teacher, batch, tmp_path)
    assert isinstance(online, TeacherSource) and isinstance(cached, TeacherSource)
    shuffled = {k: [v[i] for i in (4, 0, 2)] for k, v in batch.items()}
    shuffled["waveform"] = torch.stack(shuffled["waveform"])
    # the same batch: bit-identical; other batches: up to float noise of the batch size
    for b, tol in ((batch, 0.0), (shuffled, 1e-6)):
        a, c = online.outputs(b, "train", "cpu"), cached.outputs(b, "train", "cpu")
        assert type(a) is type(c) is teachers.TeacherOutput
        assert a.logits.shape == (len(b["clip_id"]), 3) and a.attention.shape[0] == len(a.logits)
        torch.testing.assert_close(c.logits, a.logits, rtol=tol, atol=tol)
        torch.testing.assert_close(c.attention, a.attention, rtol=tol, atol=tol)
        torch.testing.assert_close(c.hidden, a.hidden, rtol=1e-3, atol=1e-3)  # float16 on disk
        assert c.spans is None and a.spans is not None
    in_file_order = cached.lookup("train", batch["clip_id"][:3]).logits
    assert not torch.allclose(c.logits, in_file_order)  # rows follow the batch's clip ids


def test_module_steps_the_same_with_either_source(teacher, tmp_path: Path) -> None:
    batch = clips(5)
    cached = cache_of(teacher, batch, tmp_path, split="val")
    weights = module(teacher_dim=teacher.config.width).state_dict()
    losses = {}
    for name, source in (("online", teacher), ("cached", cached)):
        m = module(teacher_dim=teacher.config.width)
        m.load_state_dict(weights)
        m.set_teacher_source(source)
        with torch.no_grad():
            losses[name] = m.eval()._step(batch, "val")
    (t_on, i_on, terms_on), (t_ca, i_ca, terms_ca) = losses["online"], losses["cached"]
    torch.testing.assert_close(i_ca.teacher_logits, i_on.teacher_logits, rtol=0, atol=0)
    torch.testing.assert_close(i_ca.teacher_attention, i_on.teacher_attention, rtol=0, atol=0)
    for term in ("logit_kd", "temporal_kd"):
        torch.testing.assert_close(terms_ca[term], terms_on[term], rtol=0, atol=0)
        assert terms_on[term] > 0
    torch.testing.assert_close(terms_ca["hint"], terms_on["hint"], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(t_ca, t_on, rtol=1e-3, atol=1e-4)


def test_online_teacher_is_wrapped_and_never_saved_with_the_module(teacher) -> None:
    m = module(teacher_dim=teacher.config.width)
    keys = set(m.state_dict())
    m.set_teacher_source(teacher)
    assert isinstance(m.teacher_source, OnlineTeacher) and m.teacher_source.teacher is teacher
    assert set(m.state_dict()) == keys  # no teacher weights in checkpoints
    fresh = module(teacher_dim=teacher.config.width)
    fresh.load_state_dict(m.state_dict())  # strict: a checkpoint loads without the teacher
    source = m.teacher_source
    fresh.set_teacher_source(source)
    assert fresh.teacher_source is source  # a TeacherSource is attached as it is


def test_online_teacher_refuses_cached_features(teacher) -> None:
    batch = clips(2)
    features = {"features": torch.randn(2, 40, 101), **{k: batch[k] for k in ("label", "clip_id")}}
    with pytest.raises(UsageError, match="the online teacher \\(teacher.cache=false\\) needs"):
        OnlineTeacher(teacher).outputs(features, "train", "cpu")
