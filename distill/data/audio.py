"""Audio file reading, header checks, fixed-length pad/crop, span bookkeeping and SNR mixing.

Offset convention used everywhere in `distill.data`: a returned clip `out` relates to its source
signal `src` by ``out[i] = src[i + offset]`` (zero where `i + offset` falls outside `src`). A
crop therefore has ``offset >= 0``; padding at the front, or placing a keyword `p` samples into a
longer noise clip, gives ``offset = -p <= 0``. A time `t` (seconds) in the source is at
``t - offset / sample_rate`` in the returned clip.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from distill.errors import BadValueError, DistillError

MAX_SPANS = 8  # rows of the `spans` tensor in every item


class AudioFileError(DistillError, ValueError):
    """An audio file cannot be used: unreadable, corrupt, empty or holding NaN/inf samples."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says: frames and native sample rate."""

    path: str
    frames: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def open_name(path: str | Path) -> str | bytes:
    """The name soundfile opens: the file system's bytes on POSIX, so that a name that is not
    UTF-8 (held in a str as surrogate escapes, as os.listdir gives it) opens like any other."""
    return os.fsencode(path) if os.name == "posix" else str(path)


def unreadable(path: str | Path, err: Exception) -> AudioFileError:
    """The AudioFileError for a file soundfile could not open or read, with the reason."""
    if not os.path.lexists(path):
        return AudioFileError(f"audio file {path} does not exist")
    if os.path.isdir(path):
        return AudioFileError(f"audio file {path} is a folder, not a file")
    reason = getattr(err, "error_string", None) or str(err) or type(err).__name__
    return AudioFileError(f"cannot read audio file {path}: {reason}")


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header (cheap); raise AudioFileError if unreadable or empty."""
    try:
        info = sf.info(open_name(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise unreadable(path, err) from err
    if info.frames <= 0:
        raise AudioFileError(f"audio file {path} is empty (0 samples)")
    if info.samplerate <= 0:
        raise AudioFileError(f"audio file {path} has an invalid sample rate {info.samplerate}")
    return AudioInfo(str(path), int(info.frames), int(info.samplerate))


def read_samples(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples (N, C) float32, native rate) of a file; AudioFileError when it is unreadable,
    empty or holds NaN/inf samples."""
    try:
        data, native_rate = sf.read(open_name(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise unreadable(path, err) from err
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {path} is empty (0 samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioFileError(f"audio file {path} holds {bad} NaN/inf samples")
    return data, int(native_rate)


def sample_problem(path: str | Path) -> str | None:
    """Why a file's samples cannot be used (the AudioFileError message), or None when they can."""
    try:
        read_samples(path)
    except AudioFileError as err:
        return str(err)
    return None


# largest windowed-sinc kernel (taps) torchaudio's resampler may build for one file: 44.1 kHz ->
# 16 kHz needs 76 thousand, a header claiming 44101 Hz would need 706 million (gigabytes)
MAX_RESAMPLE_TAPS = 2**24


def resample_taps(native: int, target: int) -> int:
    """Size of the kernel torchaudio.functional.resample builds from `native` to `target` Hz."""
    g = math.gcd(native, target)
    orig, new = native // g, target // g
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))  # its defaults: 6 zero crossings, 0.99
    return new * (orig + 2 * width)


def load_audio(path: str | Path, sample_rate: int, mono: bool = True) -> torch.Tensor:
    """Read a file as float32, downmix to mono, resample to `sample_rate`: (N,) or (C, N)."""
    data, native_rate = read_samples(path)
    if native_rate != sample_rate and resample_taps(native_rate, sample_rate) > MAX_RESAMPLE_TAPS:
        raise AudioFileError(
            f"audio file {path} has a sample rate of {native_rate} Hz, which has no small ratio "
            f"to {sample_rate} Hz (resampling would need a kernel of "
            f"{resample_taps(native_rate, sample_rate):,} taps): convert it to a common rate"
        )
    wave = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, N)
    if mono:
        wave = wave.mean(dim=0)
    if native_rate != sample_rate:
        wave = torchaudio.functional.resample(wave, int(native_rate), int(sample_rate))
    return wave.contiguous()


def check_headers(
    paths: list[str], skip_bad_files: bool, workers: int = 8
) -> tuple[dict[str, AudioInfo], list[tuple[str, str]]]:
    """Header-check every file; return infos of good files and (path, reason) of skipped ones.

    With `skip_bad_files=False` the first bad file (in list order) raises AudioFileError.
    """

    def one(path: str) -> AudioInfo | AudioFileError:
        try:
            return audio_info(path)
        except AudioFileError as err:
            return err

    if len(paths) > 64 and workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, paths))
    else:
        results = [one(p) for p in paths]
    infos: dict[str, AudioInfo] = {}
    skipped: list[tuple[str, str]] = []
    for path, res in zip(paths, results):
        if isinstance(res, AudioFileError):
            if not skip_bad_files:
                raise res
            skipped.append((path, str(res)))
        else:
            infos[path] = res
    return infos, skipped


def fix_length(
    wave: torch.Tensor,
    n: int,
    mode: str = "center",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Pad with zeros or crop `wave` (N,) to `n` samples; return (clip, offset).

    `mode`: "start" keeps the beginning (pads at the end), "center" centres, "random" picks a
    uniformly random crop start, or a random front padding, from `generator`. The offset follows
    the module convention ``out[i] = wave[i + offset]``.
    """
    if mode not in ("center", "start", "random"):
        raise BadValueError(f"fix_length mode must be center | start | random, given {mode!r}")
    length = wave.shape[-1]
    slack = length - n  # > 0: crop, < 0: pad
    if slack == 0:
        return wave, 0
    span = abs(slack)
    if mode == "start":
        shift = 0
    elif mode == "center":
        shift = span // 2
    else:
        shift = int(torch.randint(0, span + 1, (1,), generator=generator).item())
    if slack > 0:
        return wave[..., shift : shift + n].contiguous(), shift
    out = wave.new_zeros(*wave.shape[:-1], n)
    out[..., shift : shift + length] = wave
    return out, -shift


def place(wave: torch.Tensor, n: int, offset: int) -> torch.Tensor:
    """The length-`n` clip `out[i] = wave[i + offset]` (zeros outside `wave`)."""
    out = wave.new_zeros(n)
    lo, hi = max(0, -offset), min(n, wave.shape[-1] - offset)
    if hi > lo:
        out[lo:hi] = wave[lo + offset : hi + offset]
    return out


def empty_spans() -> torch.Tensor:
    """A (MAX_SPANS, 2) all-NaN span tensor (nothing known)."""
    return torch.full((MAX_SPANS, 2), float("nan"))


def make_spans(
    events: list[tuple[float, float]], shift_seconds: float, clip_seconds: float
) -> torch.Tensor:
    """Spans (MAX_SPANS, 2) of `events` (source seconds) in a clip `shift_seconds` later.

    Events are moved by ``-shift_seconds``, clipped to [0, clip_seconds], those left with no
    duration dropped, sorted by onset; at most MAX_SPANS kept, rest NaN.
    """
    rows = []
    for onset, offset in events:
        a = min(max(onset - shift_seconds, 0.0), clip_seconds)
        b = min(max(offset - shift_seconds, 0.0), clip_seconds)
        if b > a:
            rows.append((a, b))
    rows.sort()
    spans = empty_spans()
    if rows:
        spans[: min(len(rows), MAX_SPANS)] = torch.tensor(rows[:MAX_SPANS], dtype=torch.float32)
    return spans


def shift_spans(spans: torch.Tensor, seconds: float, clip_seconds: float) -> torch.Tensor:
    """Spans moved later by `seconds` (may be negative) and clipped to the clip."""
    rows = [tuple(r) for r in spans.tolist() if not math.isnan(r[0])]
    return make_spans(rows, -seconds, clip_seconds)


def power(wave: torch.Tensor) -> float:
    """Mean square of a waveform."""
    n = wave.numel()
    return float(torch.dot(wave.reshape(-1), wave.reshape(-1))) / n if n else 0.0


def noise_scale(signal_power: float, noise_power: float, snr_db: float) -> float:
    """Factor for the noise so that 10*log10(signal_power / (scale^2 noise_power)) = snr_db."""
    if noise_power <= 0.0:
        raise BadValueError("cannot scale an all-zero noise segment to an SNR")
    return math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
