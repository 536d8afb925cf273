"""NoisySpeechCommands: placement, spans, SNR, epochs/variants, reproducibility, disjointness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distill.data.audio import place, power
from distill.data.noise import NoiseBank
from distill.data.noisy import NoisySpeechCommands

from .fakes import make_speech_commands, make_synth_kws_bank

WORDS = ["yes", "no", "up", "cat"]
SPEAKERS = ["s1", "s2", "s3", "s4", "s5"]


@pytest.fixture()
def bank(tmp_path):
    root = tmp_path / "bank"
    make_synth_kws_bank(root, WORDS, SPEAKERS, onset=0.2, offset=0.7)
    return root


def make(root, split, **kw):
    kw.setdefault("classes", "yes,no,up,_unknown_,_silence_")
    kw.setdefault("clip_seconds", 2.0)
    return NoisySpeechCommands(root, split, **kw)


def test_items_spans_equal_placement_plus_onset(bank):
    ds = make(bank, "validation", clip_seconds=4.0)
    rows = ds.describe_mixtures()
    assert len(rows) == len(ds)
    for i, row in enumerate(rows):
        item = ds[i]
        assert item["waveform"].shape == (64000,)
        assert item["clip_id"] == row["clip_id"] and item["clip_id"].endswith("#eval")
        if row["label"] == "_silence_":
            assert torch.isnan(item["spans"]).all() and math.isnan(row["onset"])
            continue
        pos = row["position"] / 16000
        assert item["offset"] == -row["position"]
        assert torch.allclose(item["spans"][0], torch.tensor([pos + 0.2, pos + 0.7]), atol=1e-5)
        assert 0.0 <= item["spans"][0, 0] < item["spans"][0, 1] <= 4.0
        assert torch.isnan(item["spans"][1:]).all()
        assert row["onset"] == pytest.approx(pos + 0.2)


def test_snr_matches_the_drawn_value(bank):
    ds = make(bank, "test", snr_db=[-5.0, 20.0])
    rows = ds.describe_mixtures()
    for i, row in enumerate(rows):
        if row["label"] == "_silence_":
            continue
        item = ds[i]
        entry = ds.entries[i]
        from distill.data.audio import load_audio

        kw = place(load_audio(entry.path, 16000), 32000, item["offset"])
        noise = item["waveform"] - kw
        speech = load_audio(entry.path, 16000)[int(0.2 * 16000) : int(0.7 * 16000)]
        snr = 10 * math.log10(power(speech) / power(noise))
        assert snr == pytest.approx(row["snr_db"], abs=1e-3)
        assert -5.0 <= row["snr_db"] <= 20.0


def test_eval_mixtures_identical_across_constructions(bank):
    a, b = make(bank, "validation", seed=3), make(bank, "validation", seed=3)
    assert repr(a.describe_mixtures()) == repr(b.describe_mixtures())  # repr: nan == nan
    for i in range(len(a)):
        assert torch.equal(a[i]["waveform"], b[i]["waveform"])
    a.set_epoch(5)  # evaluation ignores the epoch
    assert torch.equal(a[0]["waveform"], b[0]["waveform"])
    other_seed = make(bank, "validation", seed=4)
    assert repr(other_seed.describe_mixtures()) != repr(a.describe_mixtures())


def test_train_mixtures_change_with_epoch_and_reproduce(bank):
    a, b = make(bank, "train", seed=1), make(bank, "train", seed=1)
    e0, e1 = a[(0, 0)], a[(1, 0)]
    assert not torch.equal(e0["waveform"], e1["waveform"])
    assert e0["clip_id"].endswith("#e0") and e1["clip_id"].endswith("#e1")
    b.set_epoch(1)
    assert torch.equal(b[0]["waveform"], e1["waveform"])
    assert repr(a.describe_mixtures(epoch=1)) == repr(b.describe_mixtures(epoch=1))
    assert not a.audio_is_fixed


def test_train_variants_cycle(bank):
    ds = make(bank, "train", train_variants=3)
    items = [ds[(epoch, 2)] for epoch in range(4)]
    ids = [it["clip_id"] for it in items]
    assert ids[0].endswith("#v0") and ids[1].endswith("#v1") and ids[3].endswith("#v0")
    assert torch.equal(items[0]["waveform"], items[3]["waveform"])
    assert not torch.equal(items[0]["waveform"], items[1]["waveform"])
    assert ds.audio_is_fixed


def test_speakers_and_noise_files_are_split_disjoint(bank):
    sets = {s: make(bank, s) for s in ("train", "validation", "test")}
    spk = {s: d.speakers() for s, d in sets.items()}
    assert not (spk["train"] & spk["validation"]) and not (spk["train"] & spk["test"])
    assert not (spk["validation"] & spk["test"])
    noise = {
        s: {r["noise_file"] for e in range(3) for r in d.describe_mixtures(epoch=e)}
        for s, d in sets.items()
    }
    assert noise == {
        "train": {"train_noise0.wav"},
        "validation": {"validation_noise0.wav"},
        "test": {"test_noise0.wav"},
    }


def test_real_sc_noise_segments_are_split_disjoint(tmp_path):
    root = tmp_path / "sc"
    make_speech_commands(root, WORDS, SPEAKERS, noise_files=2, noise_seconds=20.0)
    regions = {}
    for split in ("train", "validation", "test"):
        bank = NoiseBank.from_root(root, split, 16000)
        regions[split] = bank.regions[0]
        rng = np.random.default_rng(0)
        for _ in range(50):
            k, start = bank.choose(16000, rng)
            a, b = bank.regions[k]
            assert a <= start and start + 16000 <= b
    assert regions == {
        "train": (0, 256000),
        "validation": (256000, 288000),
        "test": (288000, 320000),
    }
    # an 8 s clip does not fit in a 2 s region: the region is looped, never leaving it
    ds = NoisySpeechCommands(root, "test", classes="all", clip_seconds=8.0)
    item = ds[0]
    assert item["waveform"].shape == (128000,) and torch.isfinite(item["waveform"]).all()
    # real SC has no manifest: the span is the whole keyword clip
    dur = ds.entries[0].events[0][1]
    pos = -item["offset"] / 16000
    assert torch.allclose(item["spans"][0], torch.tensor([pos, pos + dur]), atol=1e-4)


def test_one_second_clips_still_mix_noise(bank):
    ds = make(bank, "test", clip_seconds=1.0, snr_db=[0.0, 0.0])
    item = ds[0]
    assert item["offset"] == 0
    assert item["waveform"][:1000].abs().max() > 0  # noise where the keyword is silent


def test_silence_items_are_noise_only(bank):
    ds = make(bank, "train")
    sil = [i for i, e in enumerate(ds.entries) if e.path is None]
    assert len(sil) == math.ceil((len(ds) - len(sil)) / 10) > 0
    item = ds[sil[0]]
    assert item["label"] == ds.class_names.index("_silence_")
    assert torch.isnan(item["spans"]).all() and item["clip_id"].startswith("_silence_/")


def test_bad_snr_and_missing_noise(bank, tmp_path):
    with pytest.raises(ValueError, match="snr_db must be"):
        make(bank, "train", snr_db=[10.0, 0.0])
    root = tmp_path / "nonoise"
    make_speech_commands(root, WORDS, SPEAKERS, noise_files=0)
    with pytest.raises(FileNotFoundError, match="noise folder .*_background_noise_ does not"):
        NoisySpeechCommands(root, "train", classes="all")
    with pytest.raises(FileNotFoundError, match="manifest.csv does not exist"):
        NoisySpeechCommands(root, "train", classes="all", require_manifest=True)
