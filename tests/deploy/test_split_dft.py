"""The exported frontend's two-stage DFT: the same mel power as the direct DFT basis and as
torchaudio, with the split and its cost checked by hand."""

from __future__ import annotations

import pytest
import torch

from distill.data.frontend import Frontend
from distill.deploy.onnx_frontend import ExportableFrontend, LogMelFrames
from distill.deploy.split_dft import split_macs, split_plan


def test_the_split_is_chosen_by_multiply_adds_then_weights() -> None:
    # 512-point frames every 160 samples: N2 in {4, 8, 16, 32}; 16 and 32 both cost
    # 2 * 32 * 512 + 4 * 32 * 16 * 9 = 51,200 = 2 * 16 * 512 + 4 * 16 * 32 * 17; N1 = 16 has
    # the fewer stage-1 weights
    assert split_macs(512, 16) == split_macs(512, 32) == 51_200
    assert split_macs(512, 8) == 2 * 64 * 512 + 4 * 64 * 8 * 5
    assert split_plan(512, 160) == 32
    assert split_plan(509, 160) is None  # a prime frame length
    assert split_plan(512, 161) is None  # no common factor with the hop
    frames = LogMelFrames(Frontend())
    assert frames.split.stage1.numel() == 2 * 16 * 512  # against 514 * 512 for the direct DFT


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"n_fft": 400, "win_length": 400}, {"n_fft": 480, "win_length": 400},
     {"n_mels": 64, "n_fft": 640, "win_length": 640, "hop_length": 320},
     {"n_fft": 512, "win_length": 480, "hop_length": 161}],
)  # fmt: skip
def test_split_power_equals_the_direct_dft_and_torchaudio(kwargs: dict) -> None:
    frontend = Frontend(**kwargs)
    split, direct = LogMelFrames(frontend), LogMelFrames(frontend, split=False)
    assert (split.split is None) == (kwargs.get("hop_length") == 161)
    segments = torch.randn(3, 12_345, generator=torch.Generator().manual_seed(0))
    a, b = split.power_mel(segments), direct.power_mel(segments)
    assert a.shape == b.shape == (3, frontend.n_features, (12_345 - split.n_fft) // split.hop + 1)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
    wave = torch.randn(2, 16_000, generator=torch.Generator().manual_seed(1)) * 0.3
    assert torch.allclose(ExportableFrontend(frontend)(wave), frontend(wave), atol=1e-4)
