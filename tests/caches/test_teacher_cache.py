"""TeacherCache: round trip, order of lookups, staleness, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from distill.teachers.base import TeacherOutput

from distill.caches.records import StaleCacheError, sha256_of_tensors
from distill.caches.teacher_cache import TeacherCache

FP = {"teacher": "t1", "rollout": "r1", "data": "d1", "crop": "c1"}


def outputs(n: int, offset: int = 0, hidden: bool = False) -> TeacherOutput:
    logits = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) + offset
    attention = torch.softmax(torch.randn(n, 5), dim=-1)
    return TeacherOutput(
        logits=logits,
        attention=attention,
        spans=torch.zeros(5, 2),
        hidden=torch.randn(n, 5, 4) if hidden else None,
    )


def batches(ids: list[str], size: int = 2, hidden: bool = False):
    for i in range(0, len(ids), size):
        chunk = ids[i : i + size]
        yield chunk, outputs(len(chunk), offset=100 * i, hidden=hidden)


def test_round_trip_and_lookup_order(tmp_path: Path) -> None:
    ids = [f"clip{i}" for i in range(5)]
    cache = TeacherCache(tmp_path, FP)
    cache.write("val", batches(ids, hidden=True), total=5, with_hidden=True)
    reader = TeacherCache(tmp_path, FP)
    got = reader.lookup("val", ["clip3", "clip0", "clip4"])
    assert got.logits[:, 0].tolist() == [200 + 3.0, 0.0, 400.0]
    assert got.attention.shape == (3, 5)
    assert torch.allclose(got.attention.sum(-1), torch.ones(3))
    assert got.hidden is not None and got.hidden.shape == (3, 5, 4)
    with pytest.raises(KeyError, match="clip 'nope' is not in the teacher cache for split 'val'"):
        reader.lookup("val", ["nope"])


def test_stale_cache_names_what_changed(tmp_path: Path) -> None:
    TeacherCache(tmp_path, FP).write("train", batches(["a", "b"]), total=2)
    changed = dict(FP, teacher="t2", crop="c9")
    with pytest.raises(StaleCacheError) as err:
        TeacherCache(tmp_path, changed).lookup("train", ["a"])
    message = str(err.value)
    assert "teacher changed (cached t1, now t2)" in message
    assert "crop changed (cached c1, now c9)" in message
    assert "data changed" not in message


def test_killed_build_leaves_no_complete_split(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path, FP)
    cache.write("test", batches(["a", "b"]), total=2)
    assert cache.has("test")

    def dying():
        yield ["a"], outputs(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.write("test", dying(), total=2)
    assert not cache.has("test")
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        cache.check("test")


def test_count_mismatch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="got 2 clips, expected 3"):
        TeacherCache(tmp_path, FP).write("val", batches(["a", "b"]), total=3)


def test_weight_hash_changes_with_weights() -> None:
    lin = torch.nn.Linear(2, 2)
    before = sha256_of_tensors(lin.state_dict())
    with torch.no_grad():
        lin.weight[0, 0] += 1
    assert sha256_of_tensors(lin.state_dict()) != before


def test_shards_merge_into_one_split(tmp_path: Path) -> None:
    ids = [f"clip{i}" for i in range(7)]
    cache = TeacherCache(tmp_path, FP)
    mine = {0: ids[0::2], 1: ids[1::2]}
    for rank in (0, 1):
        cache.write("train", batches(mine[rank]), total=len(mine[rank]), shard=(rank, 2))
    assert not cache.has("train")  # shards alone are not a complete split
    cache.merge("train", 2)
    assert cache.has("train")
    assert not list(tmp_path.glob("*shard*"))
    got = TeacherCache(tmp_path, FP).lookup("train", ["clip1", "clip6"])
    # clip1 is rank 1's first record (0); clip6 is row 1 of rank 0's second chunk (3 + 200)
    assert got.logits[:, 0].tolist() == [0.0, 203.0]


def test_merge_refuses_missing_shard(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path, FP)
    cache.write("val", batches(["a"]), total=1, shard=(0, 2))
    with pytest.raises(FileNotFoundError, match="shards missing: .*val.shard1of2.json"):
        cache.merge("val", 2)


def test_cache_dir_separates_rollout_layer_choices() -> None:
    from omegaconf import OmegaConf

    from distill.caches.teacher_cache import cache_dir
    from distill.config.schema import RecipeConfig

    cfg = OmegaConf.merge(
        OmegaConf.structured(RecipeConfig),
        {
            "data": {"name": "synth_kws", "clip_seconds": 8.0, "root": "bank"},
            "teacher": {"path": "t"},
        },
    )
    plain = cache_dir(cfg)
    assert plain.parent == Path("t/cache")
    assert re.fullmatch(r"synth_kws-8s-seed0-[0-9a-f]{8}", plain.name)
    cfg.teacher.rollout_layers = [2, 3]
    assert re.fullmatch(r"synth_kws-8s-seed0-layers2_3-[0-9a-f]{8}", cache_dir(cfg).name)


def test_cache_dir_separates_data_setups() -> None:
    from omegaconf import OmegaConf

    from distill.caches.teacher_cache import cache_dir
    from distill.config.schema import RecipeConfig

    base = {"data": {"name": "synth_kws", "root": "bank"}, "teacher": {"path": "t"}}
    cfg = OmegaConf.merge(OmegaConf.structured(RecipeConfig), base)
    changes = {
        "root": "other_bank",
        "snr_db": [0.0, 5.0],
        "crop": "start",
        "train_variants": 7,
        "limit_train": 9,
        "classes": "all",
        "augment": {"time_shift_ms": 50.0},
    }
    names = {cache_dir(cfg)}
    for key, value in changes.items():
        other = cfg.copy()
        OmegaConf.update(other, f"data.{key}", value, merge=True)
        names.add(cache_dir(other))
    assert len(names) == len(changes) + 1  # every change gets its own folder
    assert cache_dir(cfg) == cache_dir(cfg.copy())  # and the same set-up the same one
