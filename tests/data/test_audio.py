"""load_audio, header checks, fix_length/place offsets, spans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from distill.data.audio import AudioFileError, audio_info, check_headers, fix_length, load_audio, make_spans, place

from .fakes import tone


@pytest.mark.parametrize("native", [8000, 44100])
def test_resamples_to_recipe_rate(tmp_path, native):
    path = tmp_path / f"a{native}.wav"
    sf.write(path, tone(0.5, 440.0, native), native)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.shape[0] - 8000) <= 1
    # the tone survives resampling: dominant frequency stays at 440 Hz
    spec = torch.fft.rfft(wave).abs()
    assert abs(int(spec.argmax()) * 16000 / wave.shape[0] - 440.0) < 5.0


def test_stereo_is_downmixed(tmp_path):
    path = tmp_path / "st.wav"
    left, right = np.full(100, 0.2, np.float32), np.full(100, 0.6, np.float32)
    sf.write(path, np.stack([left, right], 1), 16000)
    wave = load_audio(path, 16000)
    assert wave.shape == (100,)
    assert torch.allclose(wave, torch.full((100,), 0.4), atol=1e-4)
    assert load_audio(path, 16000, mono=False).shape == (2, 100)


def test_corrupt_file_names_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00garbage" * 3)
    with pytest.raises(AudioFileError, match="broken.wav"):
        load_audio(path, 16000)
    with pytest.raises(AudioFileError, match="cannot read audio file .*broken.wav"):
        audio_info(path)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFileError, match=r"empty.wav is empty \(0 samples\)"):
        audio_info(path)
    with pytest.raises(AudioFileError, match="empty"):
        load_audio(path, 16000)


def test_nan_samples_are_rejected(tmp_path):
    path = tmp_path / "nan.wav"
    data = np.zeros(50, np.float32)
    data[[3, 7]] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav holds 2 NaN/inf samples"):
        load_audio(path, 16000)


def test_check_headers_skip_and_raise(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, tone(0.1, 300, 16000), 16000)
    bad.write_bytes(b"not audio")
    infos, skipped = check_headers([str(good), str(bad)], skip_bad_files=True)
    assert list(infos) == [str(good)] and infos[str(good)].frames == 1600
    assert len(skipped) == 1 and skipped[0][0] == str(bad)
    with pytest.raises(AudioFileError, match="bad.wav"):
        check_headers([str(good), str(bad)], skip_bad_files=False)


@pytest.mark.parametrize("mode", ["center", "start", "random"])
@pytest.mark.parametrize("length", [70, 100, 130])
def test_fix_length_offset_convention(mode, length):
    src = torch.arange(1, length + 1, dtype=torch.float32)
    out, offset = fix_length(src, 100, mode, torch.Generator().manual_seed(3))
    assert out.shape == (100,)
    for i in range(100):  # out[i] = src[i + offset], zero outside
        j = i + offset
        assert out[i] == (src[j] if 0 <= j < length else 0.0)
    assert torch.equal(place(src, 100, offset), out)
    if mode == "start":
        assert offset == 0
    if mode == "center" and length != 100:
        assert offset == (length - 100) // 2 if length > 100 else -(abs(length - 100) // 2)


def test_fix_length_random_depends_on_generator():
    src = torch.randn(1000)
    offs = {fix_length(src, 100, "random", torch.Generator().manual_seed(s))[1] for s in range(8)}
    assert len(offs) > 1 and all(0 <= o <= 900 for o in offs)
    with pytest.raises(ValueError, match="mode"):
        fix_length(src, 10, "middle")


def test_make_spans_shift_clip_and_pad():
    spans = make_spans([(0.5, 1.5), (2.0, 2.2), (-1.0, 0.1)], shift_seconds=0.25, clip_seconds=1.0)
    assert spans.shape == (8, 2)
    assert torch.allclose(spans[0], torch.tensor([0.25, 1.0]))  # clipped to the clip
    assert torch.isnan(spans[1:]).all()  # the other events fall outside the clip
    assert math.isnan(make_spans([], 0.0, 1.0)[0, 0])
