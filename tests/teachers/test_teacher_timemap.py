"""Token-to-time mapping: known token windows land on known seconds."""

from __future__ import annotations

import pytest
import torch
from distill.teachers.timemap import (
    Framing,
    conv_framing,
    frame_time_map,
    hidden_to_time,
    kwt_time_map,
    patch_time_map,
)

WAV2VEC_KERNELS = (10, 3, 3, 3, 3, 2, 2)
WAV2VEC_STRIDES = (5, 2, 2, 2, 2, 2, 2)


def test_wav2vec_conv_framing_is_20ms_hop_25ms_field() -> None:
    framing = conv_framing(WAV2VEC_KERNELS, WAV2VEC_STRIDES, 16000)
    assert (framing.hop_length, framing.win_length) == (320, 400)


def test_frame_time_map_window() -> None:
    # 2 s of wav2vec frames: 99 frames; frames 50..73 span 1.00 .. 1.485 s.
    framing = conv_framing(WAV2VEC_KERNELS, WAV2VEC_STRIDES, 16000)
    row = torch.zeros(1, 99)
    row[0, 50:74] = torch.linspace(1, 2, 24)
    attention, spans = frame_time_map(row, framing, num_samples=32000)
    assert attention.shape == (1, 99) and spans.shape == (99, 2)
    torch.testing.assert_close(attention.sum(-1), torch.ones(1))
    torch.testing.assert_close(spans[50], torch.tensor([1.0, 1.025]))
    torch.testing.assert_close(spans[73], torch.tensor([1.46, 1.485]))
    assert attention[0, 50:74].sum() == pytest.approx(1.0)
    top = spans[attention[0].topk(5).indices]
    assert (top[:, 0] >= 1.0).all() and (top[:, 1] <= 1.5).all()


def test_patch_time_map_ast_grid() -> None:
    # AST-like: CLS + dist tokens, grid 3 freq x 20 time patches in frequency-major order,
    # patches 16 frames wide with time stride 10 on Kaldi 25 ms / 10 ms frames.
    framing = Framing(16000, 160, 400)
    f_p, t_p = 3, 20
    row = torch.zeros(1, 2 + f_p * t_p)
    row[0, 0] = 0.5  # CLS: dropped
    row[0, 1] = 0.3  # distillation token: dropped
    for f, j, w in [(0, 10, 0.05), (2, 10, 0.05), (1, 12, 0.06), (2, 13, 0.04)]:
        row[0, 2 + f * t_p + j] = w
    attention, spans = patch_time_map(row, framing, (f_p, t_p), 16, 10, num_prefix=2)
    expected = torch.zeros(1, t_p)
    expected[0, 10], expected[0, 12], expected[0, 13] = 0.5, 0.3, 0.2
    torch.testing.assert_close(attention, expected)
    # column j covers frames 10j .. 10j + 15: [0.1 j, 0.1 j + 0.175] s
    torch.testing.assert_close(spans[10], torch.tensor([1.0, 1.175]))
    torch.testing.assert_close(spans[13], torch.tensor([1.3, 1.475]))
    assert spans[10, 0] >= 1.0 and spans[13, 1] <= 1.5


def test_patch_time_map_drops_padded_columns() -> None:
    # 5 real frames, stride 2: columns 0..2 start inside the clip, columns 3, 4 in padding.
    framing = Framing(16000, 160, 400)
    row = torch.tensor([[0.0, 0.1, 0.2, 0.1, 0.3, 0.3]])  # 1 prefix + 1 x 5 grid
    attention, spans = patch_time_map(row, framing, (1, 5), 2, 2, 1, num_frames=5)
    torch.testing.assert_close(attention, torch.tensor([[0.25, 0.5, 0.25]]))
    assert spans.shape == (3, 2)


def test_kwt_time_map_window() -> None:
    # Centered 30 ms windows, 10 ms hop, 2 frames per token: token i covers
    # [0.02 i - 0.015, 0.02 i + 0.025]; tokens 51..73 lie inside 1.0 .. 1.5 s.
    framing = Framing(16000, 160, 480, centered=True)
    row = torch.zeros(2, 1 + 101)
    row[:, 0] = 0.7
    row[0, 1 + 51 : 1 + 74] = 0.01
    row[1, 1 + 60] = 0.3
    attention, spans = kwt_time_map(row, framing, frames_per_token=2, num_samples=32000)
    assert attention.shape == (2, 101)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2))
    assert attention[0, 51:74].sum() == pytest.approx(1.0)
    assert attention[1, 60] == pytest.approx(1.0)
    torch.testing.assert_close(spans[51], torch.tensor([1.005, 1.045]))
    torch.testing.assert_close(spans[73], torch.tensor([1.445, 1.485]))
    torch.testing.assert_close(spans[0], torch.tensor([0.0, 0.025]))  # clipped at 0 s


def test_hidden_to_time_means_frequency_patches() -> None:
    hidden = torch.arange(2 * (1 + 2 * 3) * 1, dtype=torch.float32).reshape(2, 7, 1)
    out = hidden_to_time(hidden, (2, 3), num_prefix=1, keep=2)
    # item 0 tokens 1..6 = f0: 1, 2, 3; f1: 4, 5, 6 -> column means 2.5, 3.5
    torch.testing.assert_close(out[0, :, 0], torch.tensor([2.5, 3.5]))


def test_grid_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="prefix tokens"):
        patch_time_map(torch.rand(1, 10), Framing(16000, 160, 400), (2, 5), 1, 1, num_prefix=1)
    with pytest.raises(ValueError, match="equal length"):
        conv_framing((10, 3), (5,), 16000)
