"""Property-based fuzz of the audio loader: whatever bytes a file holds, `audio_info`,
`load_audio` and `check_headers` either give usable audio or raise the documented
AudioFileError naming the file; nothing else escapes (no crash, no other exception)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from distill.data.audio import AudioFileError, audio_info, check_headers, load_audio

RATE = 16000
EXAMPLES = int(os.environ.get("DISTILL_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run (CI); raise DISTILL_FUZZ_EXAMPLES to dig
)


def valid_wav(frames: int, channels: int, rate: int, subtype: str, seed: int) -> bytes:
    """A well-formed file written by libsndfile."""
    rng = np.random.default_rng(seed)
    data = (0.5 * rng.standard_normal((frames, channels))).clip(-1, 1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def riff(fmt: bytes, data: bytes, data_size: int | None = None, riff_size: int | None = None):
    """A RIFF/WAVE file from a raw fmt chunk body and data, with sizes that may lie."""
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data
    total = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", total & 0xFFFFFFFF) + body


odd_headers = st.builds(
    lambda tag, channels, rate, align, bits, data, data_size, riff_size: riff(
        struct.pack("<HHIIHH", tag, channels, rate, rate * max(align, 1) & 0xFFFFFFFF, align, bits),
        data,
        data_size,
        riff_size,
    ),
    tag=st.sampled_from([0, 1, 2, 3, 6, 7, 0x11, 0xFFFE, 0xFFFF]),
    channels=st.sampled_from([0, 1, 2, 3, 255, 1024, 65535]),
    rate=st.sampled_from([0, 1, 7, 8000, 16000, 44100, 44101, 192000, 2**31 - 1, 2**32 - 1]),
    align=st.sampled_from([0, 1, 2, 3, 4, 8, 65535]),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]),
    data=st.binary(max_size=512),
    data_size=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    riff_size=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)

good_files = st.builds(
    valid_wav,
    frames=st.integers(1, 400),
    channels=st.integers(1, 3),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_U8", "FLOAT", "DOUBLE", "ULAW"]),
    seed=st.integers(0, 2**16),
)


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    """A valid file cut short anywhere."""
    content = draw(good_files)
    return content[: draw(st.integers(0, len(content) - 1))]


@st.composite
def flipped(draw: st.DrawFn) -> bytes:
    """A valid file with a few bytes of its first 64 (the header) replaced."""
    content = bytearray(draw(good_files))
    for _ in range(draw(st.integers(1, 4))):
        content[draw(st.integers(0, min(63, len(content) - 1)))] = draw(st.integers(0, 255))
    return bytes(content)


def check_file(tmp: Path, content: bytes) -> None:
    """The property: usable audio, or AudioFileError naming the file, from every entry point."""
    path = tmp / "fuzz.wav"
    path.write_bytes(content)
    try:
        info = audio_info(path)
    except AudioFileError as err:
        assert str(path) in str(err), err
        info = None
    if info is not None:
        assert info.frames > 0 and info.sample_rate > 0
    try:
        wave = load_audio(path, RATE)
    except AudioFileError as err:
        assert str(path) in str(err), err
    else:
        assert wave.dtype == torch.float32 and wave.dim() == 1 and wave.numel() > 0
        assert bool(torch.isfinite(wave).all())
    infos, skipped = check_headers([str(path)], skip_bad_files=True)
    assert len(infos) + len(skipped) == 1
    assert all(str(path) in reason for _, reason in skipped)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    check_file(tmp_path, content)


@FUZZ
@given(content=st.binary(min_size=12, max_size=600).map(lambda b: b"RIFF" + b[4:8] + b"WAVE" + b))
def test_random_bytes_behind_a_riff_signature(tmp_path: Path, content: bytes) -> None:
    check_file(tmp_path, content)


@FUZZ
@given(content=odd_headers)
def test_odd_riff_headers(tmp_path: Path, content: bytes) -> None:
    check_file(tmp_path, content)


@FUZZ
@given(content=truncated())
def test_truncated_files(tmp_path: Path, content: bytes) -> None:
    check_file(tmp_path, content)


@FUZZ
@given(content=flipped())
def test_damaged_headers(tmp_path: Path, content: bytes) -> None:
    check_file(tmp_path, content)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 4))  # resampling makes each example slower
@given(content=good_files)
def test_valid_files_load(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "good.wav"
    path.write_bytes(content)
    wave = load_audio(path, RATE)
    assert wave.dim() == 1 and bool(torch.isfinite(wave).all())
    assert audio_info(path).frames == sf.info(io.BytesIO(content)).frames


@pytest.mark.parametrize("rate", [44101, 47999, 2**31 - 1])
def test_sample_rates_that_cannot_be_resampled_are_named(tmp_path: Path, rate: int) -> None:
    """A header rate whose ratio to the recipe's rate has no small fraction would need a huge
    resampling kernel (44101 Hz -> 16 kHz: gigabytes): refused, naming the file and the rate."""
    path = tmp_path / "odd_rate.wav"
    path.write_bytes(riff(struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16), b"\x01\x00" * 64))
    with pytest.raises(AudioFileError, match=rf"odd_rate\.wav.*{rate} Hz"):
        load_audio(path, RATE)


names = st.binary(min_size=1, max_size=60).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@FUZZ
@given(name=names)
def test_any_file_name_loads(tmp_path_factory: pytest.TempPathFactory, name: bytes) -> None:
    """Whatever bytes the name holds (not UTF-8 included), a valid file loads by the name
    os.listdir gives for it."""
    folder = tmp_path_factory.mktemp("names")
    data = np.full(160, 0.25, np.float32)
    try:
        sf.write(os.fsencode(folder) + b"/" + name, data, RATE, format="WAV")
    except (OSError, RuntimeError):  # a file system that refuses the name (too many: an error)
        assume(False)
    (listed,) = os.listdir(folder)
    wave = load_audio(folder / listed, RATE)
    assert torch.allclose(wave, torch.from_numpy(data), atol=1e-4)
    assert audio_info(str(folder / listed)).frames == 160
