"""Feature cache: cached items equal the computed ones, refusals, staleness, fit reads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from distill.caches.feature_cache import (
    FeatureCache,
    attach_feature_cache,
    feature_cache_dir,
    feature_fingerprint,
)
from distill.caches.records import StaleCacheError
from distill.data import build_datamodule
from distill.data.base import collate
from distill.data.frontend import build_frontend
from distill.pipeline.artifacts import STUDENT_FILE
from distill.pipeline.fit import fit
from tests.helpers.recipes import tiny_recipe


def recipe(root: Path, tmp: Path, variants: int = 2) -> DictConfig:
    cfg = tiny_recipe(root, tmp)  # no teacher: these tests are about the student's data side
    cfg.teacher.kind, cfg.teacher.path, cfg.teacher.kwargs = "none", None, {}
    cfg.data.batch_size = 8
    cfg.data.train_variants = variants
    cfg.data.cache_features = True
    cfg.data.feature_cache_dir = str(tmp / "features")
    return cfg


def test_cached_items_equal_computed_items(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    frontend = build_frontend(cfg.frontend)
    dm = build_datamodule(cfg.data)
    cache = attach_feature_cache(cfg, dm, frontend)
    assert cache is not None and cache.has("train") and cache.has("test")
    train = dm.dataloader("train").dataset
    base = dm.dataset("train")
    assert len(train.clip_ids) == 2 * len(base)  # two variants per training clip
    for epoch in (0, 1, 2):  # epoch 2 reads variant 0 again
        for index in (0, len(base) - 1):
            got, want = train[(epoch, index)], base[(epoch, index)]
            assert got["clip_id"] == want["clip_id"]
            assert got["clip_id"].endswith(f"#v{epoch % 2}")
            for key in ("label", "index", "offset"):
                assert got[key] == want[key]
            assert torch.equal(got["spans"].isnan(), want["spans"].isnan())
            assert torch.allclose(got["spans"].nan_to_num(), want["spans"].nan_to_num())
            feats = frontend(want["waveform"][None])[0]
            assert torch.allclose(got["features"], feats, atol=1e-4)
    assert not torch.allclose(train[(0, 0)]["features"], train[(1, 0)]["features"])
    test = dm.dataloader("test").dataset
    assert test[(5, 0)]["clip_id"] == dm.dataset("test")[0]["clip_id"]


def test_loader_workers_read_the_cache(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    dm = build_datamodule(cfg.data)
    attach_feature_cache(cfg, dm, build_frontend(cfg.frontend), splits=("validation",))
    ds = dm.dataloader("validation").dataset
    loader = DataLoader(
        ds, batch_size=4, sampler=[(0, i) for i in range(8)], num_workers=1, collate_fn=collate
    )
    batch = next(iter(loader))
    assert batch["features"].shape[:2] == (4, 40) and "waveform" not in batch
    assert batch["clip_id"] == [ds[(0, i)]["clip_id"] for i in range(4)]


def test_on_the_fly_mixing_is_refused(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path, variants=0)
    with pytest.raises(ValueError, match="set data.train_variants=K"):
        attach_feature_cache(cfg, build_datamodule(cfg.data), build_frontend(cfg.frontend))
    assert not list((tmp_path / "features").rglob("*.json"))


def test_frontend_change_gets_its_own_cache_and_stale_one_names_it(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    attach_feature_cache(
        cfg, build_datamodule(cfg.data), build_frontend(cfg.frontend), splits=("test",)
    )
    other = recipe(tiny_kws_bank, tmp_path)
    other.frontend.n_mels = 32
    new_fp = feature_fingerprint(other)
    assert feature_cache_dir(cfg) != feature_cache_dir(other)
    with pytest.raises(StaleCacheError, match=r"frontend changed \(cached "):
        FeatureCache(feature_cache_dir(cfg), new_fp).check("test")


def test_killed_build_leaves_no_complete_split(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    fp = feature_fingerprint(cfg)
    cache = FeatureCache(feature_cache_dir(cfg), fp)

    def dying():
        yield ["a"], {"features": np.zeros((1, 4, 3), np.float32)}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.write_rows("test", dying(), total=2)
    assert not cache.has("test") and not list(cache.directory.glob("*.npy"))


def test_fit_from_the_cache_trains_as_from_the_waveforms(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    results = fit(cfg)
    index = next((tmp_path / "features").glob("*/train.json"))
    assert len(json.loads(index.read_text())["clip_ids"]) == 2 * len(
        build_datamodule(cfg.data).dataset("train")
    )
    assert (Path(results.run_dir) / STUDENT_FILE).is_file()
    # the cached features equal the computed ones (to 1e-4), so the same seed trains the same;
    # on CUDA the fit computes its features on the GPU and convolves in TF32 (measured on an
    # H200: 2.2e-4 relative), the cache was computed on the CPU
    plain = recipe(tiny_kws_bank, tmp_path)
    plain.data.cache_features = False
    plain.run_dir = str(tmp_path / "runs_without_cache")
    reference = fit(plain)
    assert results.test["test/acc"] == pytest.approx(reference.test["test/acc"])
    rel = 1e-3 if torch.cuda.is_available() else 1e-4
    assert results.test["test/task"] == pytest.approx(reference.test["test/task"], rel=rel)
    assert results.best_val == pytest.approx(reference.best_val)


def test_online_teacher_with_cached_features_is_refused(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    from distill.pipeline.teach import teach

    cfg = recipe(tiny_kws_bank, tmp_path)
    cfg.teacher.kind, cfg.teacher.path = "inhouse", str(tmp_path / "teacher")
    cfg.teacher.kwargs = {"preset": "tiny"}
    cfg.teacher.cache = False
    cfg.losses.logit_kd.weight = 0.5
    teach(cfg)
    with pytest.raises(ValueError, match="no waveforms for the online teacher"):
        fit(cfg)


def test_distill_cache_builds_features_without_a_teacher(
    tiny_kws_bank: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from distill.cli import main

    cfg = recipe(tiny_kws_bank, tmp_path)
    path = tmp_path / "recipe.yaml"
    OmegaConf.save(cfg, path)
    assert main(["cache", str(path)]) == 0
    assert "feature cache ready in" in capsys.readouterr().out
    records = sorted(p.name for p in (tmp_path / "features").glob("*/*.npy"))
    assert records == ["test.npy", "train.npy", "validation.npy"]  # one cache, every split
    cfg.data.cache_features = False
    OmegaConf.save(cfg, path)
    with pytest.raises(SystemExit, match="nothing to cache"):
        main(["cache", str(path)])


def test_building_leaves_the_global_rng_alone(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    state = torch.random.get_rng_state()
    attach_feature_cache(cfg, build_datamodule(cfg.data), build_frontend(cfg.frontend))
    assert torch.equal(torch.random.get_rng_state(), state)  # SpecAugment draws stay the same


HOLD_CACHE = """
import sys
from distill.files import lock_folder
lock = lock_folder(sys.argv[1], "feature cache")
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_a_build_by_another_run_is_waited_for_then_used(
    tiny_kws_bank: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import subprocess
    import sys
    import threading

    cfg = recipe(tiny_kws_bank, tmp_path)
    attach_feature_cache(cfg, build_datamodule(cfg.data), build_frontend(cfg.frontend), ("test",))
    records = FeatureCache(feature_cache_dir(cfg), feature_fingerprint(cfg)).paths("test")[0]
    written = records.stat().st_mtime_ns
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CACHE, str(feature_cache_dir(cfg))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        timer = threading.Timer(1.0, holder.stdin.close)  # the other run finishes meanwhile
        timer.start()
        dm = build_datamodule(cfg.data)
        cache = attach_feature_cache(cfg, dm, build_frontend(cfg.frontend), ("test",))
        timer.join()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=60)
    err = capsys.readouterr().err
    assert f"is in use by process {holder.pid}: waiting up to 3600 s" in err
    assert err.count("waiting up to") == 1  # said once, not every poll
    assert cache is not None and cache.has("test")
    assert records.stat().st_mtime_ns == written  # used what was there, not built again
