"""Waveform augmentation inside items, SpecAugment on features, mixup."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.data.audio import make_spans
from distill.data.augment import SpecAugment, WaveformAugment, mixup
from distill.data.noise import NoiseBank
from distill.data.speech_commands import SpeechCommands

from .fakes import make_speech_commands


def test_time_shift_moves_wave_offset_and_spans():
    aug = WaveformAugment(16000, 1.0, time_shift_ms=100.0)
    wave = torch.zeros(16000)
    wave[8000] = 1.0
    spans = make_spans([(0.4, 0.6)], 0.0, 1.0)
    seen = set()
    for seed in range(10):
        out, offset, sp = aug(wave, 0, spans, np.random.default_rng(seed))
        s = -offset  # shift in samples (later = positive)
        assert abs(s) <= 1600
        assert out[8000 + s] == 1.0 and out.sum() == 1.0
        assert torch.allclose(sp[0], torch.tensor([0.4 + s / 16000, 0.6 + s / 16000]), atol=1e-5)
        seen.add(s)
    assert len(seen) > 1


def test_noise_mixing_at_snr():
    noise = torch.randn(32000)
    bank = NoiseBank(["n.wav"], [noise], [(0, 32000)])
    aug = WaveformAugment(16000, 1.0, noise_prob=1.0, noise_snr_db=[10.0, 10.0], noise_bank=bank)
    wave = torch.sin(torch.arange(16000) * 0.1)
    out, offset, _ = aug(wave, 0, make_spans([], 0, 1), np.random.default_rng(0))
    added = out - wave
    snr = 10 * torch.log10(wave.pow(2).mean() / added.pow(2).mean())
    assert offset == 0 and float(snr) == pytest.approx(10.0, abs=1e-3)
    with pytest.raises(ValueError, match="noise bank"):
        WaveformAugment(16000, 1.0, noise_prob=0.5)


def test_augment_is_inside_items_and_train_only(tmp_path):
    root = tmp_path / "sc"
    make_speech_commands(root, ["yes", "no"], ["a", "b", "c", "d"])
    bank = NoiseBank.from_root(root, "train", 16000)
    aug = WaveformAugment(16000, 1.0, time_shift_ms=50, noise_prob=1.0, noise_bank=bank)
    plain = SpeechCommands(root, "train", classes="all", crop="start")
    ds = SpeechCommands(root, "train", classes="all", crop="start", augment=aug)
    a, b = ds[(0, 1)], ds[(1, 1)]
    assert a["clip_id"] == plain[1]["clip_id"] + "#e0" and b["clip_id"].endswith("#e1")
    assert not torch.equal(a["waveform"], plain[1]["waveform"])
    assert not torch.equal(a["waveform"], b["waveform"])
    assert torch.equal(ds[(0, 1)]["waveform"], a["waveform"])  # same (seed, epoch, index)
    val = SpeechCommands(root, "validation", classes="all", crop="start", augment=aug)
    assert val.augment is None and val.audio_is_fixed


def test_specaugment_masks_only_in_training():
    feats = torch.ones(4, 40, 101)
    spec = SpecAugment(freq_mask=7, time_mask=20, num_masks=2)
    torch.manual_seed(0)
    out = spec(feats)
    assert out.shape == feats.shape and (out == 0).any()
    # masks differ between examples
    assert not torch.equal(out[0], out[1]) or not torch.equal(out[1], out[2])
    spec.eval()
    assert torch.equal(spec(feats), feats)
    assert not SpecAugment(0, 0).active


def test_mixup_soft_targets():
    x = torch.randn(6, 100)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, soft, lam, perm = mixup(
        x, y, 0.4, num_classes=3, generator=torch.Generator().manual_seed(1)
    )
    assert 0.0 <= lam <= 1.0 and soft.shape == (6, 3)
    assert torch.allclose(soft.sum(1), torch.ones(6))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
    multi = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    _, soft2, lam2, perm2 = mixup(torch.randn(2, 5), multi, 1.0)
    assert torch.allclose(soft2, lam2 * multi + (1 - lam2) * multi[perm2])
    with pytest.raises(ValueError, match="num_classes"):
        mixup(x, y, 0.4)
