"""build_datamodule from an omegaconf DataConfig: batches, class info, epochs, limits."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from distill.config.schema import DataConfig
from distill.data import build_datamodule, collate
from distill.data.datamodule import EpochSampler

from .fakes import make_fsd50k, make_speech_commands, make_synth_kws_bank

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat"]
SPEAKERS = ["s1", "s2", "s3", "s4"]


def data_cfg(**kw):
    cfg = OmegaConf.structured(DataConfig)
    return OmegaConf.merge(cfg, kw)


@pytest.fixture()
def bank(tmp_path):
    root = tmp_path / "bank"
    make_synth_kws_bank(root, WORDS, SPEAKERS)
    return root


def test_synth_kws_batches(bank):
    dm = build_datamodule(
        data_cfg(name="synth_kws", root=str(bank), clip_seconds=2.0, batch_size=4)
    )
    assert dm.task == "single_label" and dm.num_classes == 12
    assert dm.class_names == [*WORDS[:10], "_unknown_", "_silence_"]  # "cat" is _unknown_
    assert dm.clip_samples == 32000
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["waveform"].shape == (4, 32000) and batch["waveform"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.long
    assert batch["spans"].shape == (4, 8, 2) and batch["offset"].shape == (4,)
    assert len(batch["clip_id"]) == 4 and all(c.endswith("#e0") for c in batch["clip_id"])
    val = next(iter(dm.val_dataloader()))
    assert all(c.endswith("#eval") for c in val["clip_id"])
    test = next(iter(dm.dataloader("test")))
    assert test["waveform"].shape == (4, 32000)
    rows = dm.describe_mixtures("test", n=4)
    assert [r["clip_id"] for r in rows] == test["clip_id"]
    assert [-r["position"] for r in rows] == test["offset"].tolist()


def test_epoch_reaches_persistent_workers(bank):
    dm = build_datamodule(
        data_cfg(
            name="synth_kws",
            root=str(bank),
            batch_size=2,
            num_workers=1,
            train_variants=0,
            limit_train=4,
        )
    )
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    ids0 = [c for b in loader for c in b["clip_id"]]
    dm.set_epoch(3)
    ids3 = [c for b in loader for c in b["clip_id"]]
    assert len(ids0) == 4 and all(c.endswith("#e0") for c in ids0)
    assert all(c.endswith("#e3") for c in ids3)
    assert sorted(c[:-3] for c in ids0) == sorted(c[:-3] for c in ids3)


def test_limits_and_dataclass_config(bank):
    cfg = DataConfig(name="synth_kws", root=str(bank), limit_train=5, limit_eval=3, batch_size=8)
    dm = build_datamodule(cfg)
    assert len(dm.dataset("train")) == 5 and len(dm.dataset("validation")) == 3
    assert len(dm.dataset("test")) == 3


def test_speech_commands_with_augment(tmp_path):
    root = tmp_path / "sc"
    make_speech_commands(root, WORDS, SPEAKERS)
    cfg = data_cfg(
        name="speech_commands",
        root=str(root),
        batch_size=5,
        augment={"time_shift_ms": 100.0, "noise_prob": 0.8},
    )
    dm = build_datamodule(cfg)
    batch = next(iter(dm.train_dataloader()))
    assert batch["waveform"].shape == (5, 16000) and batch["clip_id"][0].endswith("#e0")
    assert dm.dataset("train").augment.noise_bank is not None
    assert not dm.dataset("train").audio_is_fixed


def test_fsd50k_datamodule(tmp_path):
    root = tmp_path / "fsd"
    make_fsd50k(
        root,
        ["A", "B", "C"],
        [("1", ["A"], "train", 2.0), ("2", ["B", "C"], "train", 1.0), ("3", ["C"], "val", 1.5)],
        [("9", ["A", "C"], 3.0)],
    )
    with pytest.raises(ValueError, match="data.classes must be 'all' for fsd50k"):
        build_datamodule(data_cfg(name="fsd50k", root=str(root), task="multi_label"))
    with pytest.raises(ValueError, match="data.task must be multi_label"):
        build_datamodule(data_cfg(name="fsd50k", root=str(root), classes="all"))
    dm = build_datamodule(
        data_cfg(
            name="fsd50k",
            root=str(root),
            task="multi_label",
            classes="all",
            clip_seconds=1.0,
            batch_size=2,
        )
    )
    assert dm.num_classes == 3 and dm.task == "multi_label"
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].shape == (2, 3) and batch["label"].dtype == torch.float32
    with pytest.raises(FileNotFoundError, match="events_manifest.csv"):
        build_datamodule(
            data_cfg(name="synth_events", root=str(root), task="multi_label", classes="all")
        ).dataset("train")


def test_config_errors(bank):
    with pytest.raises(ValueError, match="data.name 'librispeech'"):
        build_datamodule(data_cfg(name="librispeech", root=str(bank)))
    with pytest.raises(Exception, match="batch_sizes"):
        build_datamodule({"name": "synth_kws", "root": str(bank), "batch_sizes": 3})


def test_sampler_and_collate():
    s = EpochSampler(10, shuffle=True, seed=0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert {e for e, _ in first} == {0} and {e for e, _ in second} == {1}
    assert sorted(i for _, i in first) == list(range(10))
    assert [i for _, i in first] != [i for _, i in second]
    shards = [list(EpochSampler(10, True, 0, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(x) == 4 for x in shards)
    assert {i for sh in shards for _, i in sh} == set(range(10))
    batch = collate(
        [{"a": torch.zeros(2), "b": 1, "c": "x"}, {"a": torch.ones(2), "b": 2, "c": "y"}]
    )
    assert batch["a"].shape == (2, 2) and batch["b"].tolist() == [1, 2] and batch["c"] == ["x", "y"]
