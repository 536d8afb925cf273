"""The in-house spectrogram transformer teacher."""

from __future__ import annotations

import pytest
import torch
from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher

from distill import teachers

CLASSES = ["yes", "no", "up"]


def tiny(**overrides) -> SpectrogramTransformerTeacher:
    torch.manual_seed(0)
    return teachers.create("inhouse", preset="tiny", class_names=CLASSES, **overrides).freeze()


@pytest.mark.parametrize(("seconds", "positions"), [(1, 51), (4, 201)])
def test_forward_shapes(seconds: int, positions: int) -> None:
    teacher = tiny()
    out = teacher(torch.randn(2, 16000 * seconds))
    assert out.logits.shape == (2, 3)
    assert out.attention.shape == (2, positions)  # 101 frames/s, 2 frames per token
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2))
    assert (out.attention >= 0).all()
    assert out.spans.shape == (positions, 2)
    assert out.spans[0, 0] == 0.0 and out.spans[-1, 1] == pytest.approx(seconds)
    assert out.hidden is not None and out.hidden.shape == (2, positions, 32)
    assert teacher.num_classes == 3 and teacher.sample_rate == 16000


def test_classify_matches_forward_and_trains() -> None:
    teacher = tiny()
    wave = torch.randn(2, 16000)
    torch.testing.assert_close(teacher.classify(wave), teacher(wave).logits, atol=1e-5, rtol=1e-4)
    trainable = teachers.create("inhouse", preset="tiny", num_classes=3)
    trainable.classify(wave).sum().backward()
    assert trainable.head.weight.grad is not None


def test_freeze() -> None:
    teacher = tiny()
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_save_load_round_trip(tmp_path) -> None:
    teacher = tiny(query="mean", layers=[-1], head_fusion="max", patch_time=3)
    wave = torch.randn(2, 24000)
    before = teacher(wave)
    teacher.save_pretrained(tmp_path / "t")
    loaded = teachers.load_teacher(tmp_path / "t").freeze()
    assert isinstance(loaded, SpectrogramTransformerTeacher)
    assert (loaded.query, loaded.layers, loaded.head_fusion) == ("mean", [-1], "max")
    after = loaded(wave)
    for a, b in [(before.logits, after.logits), (before.attention, after.attention),
                 (before.spans, after.spans), (before.hidden, after.hidden)]:  # fmt: skip
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    again = teachers.create("inhouse", path=str(tmp_path / "t")).freeze()
    torch.testing.assert_close(again(wave).logits, before.logits, rtol=0, atol=0)


def test_default_preset_size() -> None:
    teacher = teachers.create("inhouse", num_classes=12)
    n = sum(p.numel() for p in teacher.parameters())
    print(f"in-house base teacher: {n:,} parameters")
    assert 2_000_000 < n < 4_000_000
    assert (teacher.config.width, teacher.config.depth, teacher.config.heads) == (192, 6, 4)


def test_forced_window_maps_to_seconds(window) -> None:
    # 2 s clip: 201 frames -> 101 tokens of 2 frames after CLS; token 1 + j covers
    # [0.02 j - 0.015, 0.02 j + 0.025] s, so j = 51..73 lie inside 1.0 .. 1.5 s.
    teacher = tiny()
    window.force(teacher, [1 + j for j in range(51, 74)], prefix=[0])
    out = teacher(torch.randn(2, 32000))
    window.check(out)
    assert out.attention[:, 51:74].sum(-1).min() == pytest.approx(1.0)


def test_two_dimensional_patches_and_no_cls() -> None:
    teacher = tiny(patch_freq=10, cls_token=False)
    assert teacher.query == "mean" and teacher.freq_patches == 4
    out = teacher(torch.randn(1, 16000))
    assert out.attention.shape == (1, 51) and out.hidden.shape == (1, 51, 32)


def test_bad_config_and_input() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        teachers.create("inhouse", preset="tiny", num_classes=2, widht=4)
    with pytest.raises(ValueError, match="preset"):
        teachers.create("inhouse", preset="huge", num_classes=2)
    with pytest.raises(ValueError, match="patch_freq"):
        tiny(patch_freq=7)
    with pytest.raises(ValueError, match="cls_token"):
        tiny(cls_token=False, query="cls")
    with pytest.raises(ValueError, match="max_seconds"):
        tiny(max_seconds=1.0)(torch.randn(1, 40000))
    with pytest.raises(ValueError, match="waveform"):
        tiny()(torch.randn(16000))
    with pytest.raises(ValueError, match="unknown teacher kind"):
        teachers.create("onnx")
