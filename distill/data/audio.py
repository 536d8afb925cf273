"""Audio file reading, header checks, fixed-length pad/crop, span bookkeeping and SNR mixing.

Offset convention used everywhere in `distill.data`: a returned clip `out` relates to its source
signal `src` by ``out[i] = src[i + offset]`` (zero where `i + offset` falls outside `src`). A
crop therefore has ``offset >= 0``; padding at the front, or placing a keyword `p` samples into a
longer noise clip, gives ``offset = -p <= 0``. A time `t` (seconds) in the source is at
``t - offset / sample_rate`` in the returned clip.
"""

from __future__ import annotations

from distill.errors import DistillError, BadValueError

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

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


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header (cheap); raise AudioFileError if unreadable or empty."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioFileError(f"cannot read audio file {path}: {err}") from err
    if info.frames <= 0:
        raise AudioFileError(f"audio file {path} is empty (0 samples)")
    if info.samplerate <= 0:
        raise AudioFileError(f"audio file {path} has an invalid sample rate {info.samplerate}")
    return AudioInfo(str(path), int(info.frames), int(info.samplerate))


def load_audio(path: str | Path, sample_rate: int, mono: bool = True) -> torch.Tensor:
    """Read a file as float32, downmix to mono, resample to `sample_rate`: (N,) or (C, N)."""
    try:
        data, native_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioFileError(f"cannot read audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {path} is empty (0 samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioFileError(f"audio file {path} holds {bad} NaN/inf samples")
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
