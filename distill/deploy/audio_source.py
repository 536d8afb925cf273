"""Long audio files read from disk in blocks, as mono float32 at the model's sample rate.

Conversion (documented in docs/streaming.md): channels are averaged; another sample rate is
resampled with `torchaudio.functional.resample` (its default windowed-sinc filter). The
resampling runs block by block with enough context on both sides that the result equals
resampling the whole file at once (up to float rounding), so no file is ever loaded whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from distill.data.audio import AudioFileError
from distill.errors import BadValueError, MissingFileError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
LOWPASS_WIDTH, ROLLOFF = 6, 0.99  # torchaudio's resample defaults


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says."""

    path: str
    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def find_audio(paths: list[str | Path]) -> list[Path]:
    """Files given as they are, folders searched recursively for .wav/.flac/.ogg (sorted)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            files = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
            )
            if not files:
                raise BadValueError(f"folder {item} holds no {'/'.join(AUDIO_EXTENSIONS)} files")
            found += files
        elif item.is_file():
            found.append(item)
        else:
            raise MissingFileError(f"audio {item} does not exist")
    return found


def audio_header(path: str | Path) -> AudioHeader:
    """The header of `path`; AudioFileError (naming the file) if it cannot be read as audio."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioFileError(
            f"cannot read audio file {path}: {' '.join(str(err).split())}"
        ) from err
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioFileError(f"audio file {path} has an invalid header ({info.samplerate} Hz)")
    return AudioHeader(str(path), int(info.frames), int(info.samplerate), int(info.channels))


class StreamResampler:
    """`torchaudio.functional.resample` applied block by block, equal to the whole-signal result.

    Output block m (`new` samples, rates reduced by their gcd) depends on the input samples
    m * orig - width .. (m + 1) * orig + width; each call resamples a segment with a context of
    at least `width` real (or, at the signal's start and end, zero) samples on both sides.
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        g = math.gcd(orig_rate, new_rate)
        self.orig_rate, self.new_rate = orig_rate, new_rate
        self.o, self.n = orig_rate // g, new_rate // g
        width = math.ceil(LOWPASS_WIDTH * self.o / (min(self.o, self.n) * ROLLOFF)) + 1
        self.context = self.o * math.ceil(width / self.o)  # a whole number of input blocks
        self._buf = torch.zeros(self.context)  # input samples from index -context
        self._buf_start = -self.context
        self._next = 0  # next output block
        self._length = 0  # input samples pushed

    def _blocks(self, last: int) -> torch.Tensor:
        if last < self._next:
            return torch.zeros(0)
        lo = self._next * self.o - self.context - self._buf_start
        hi = (last + 1) * self.o + self.context - self._buf_start
        out = torchaudio.functional.resample(self._buf[lo:hi], self.orig_rate, self.new_rate)
        skip = self.context // self.o * self.n
        out = out[skip : skip + (last + 1 - self._next) * self.n]
        self._next = last + 1
        keep = self._next * self.o - self.context - self._buf_start
        self._buf, self._buf_start = self._buf[keep:], self._buf_start + keep
        return out

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Input samples (N,) -> the output samples that are now final."""
        if self.o == self.n:
            return samples
        self._buf = torch.cat([self._buf, samples])
        self._length += samples.numel()
        end = self._buf_start + self._buf.numel()
        return self._blocks((end - self.context) // self.o - 1)

    def finish(self) -> torch.Tensor:
        """The remaining output (zeros after the end, as the whole-signal resample pads)."""
        if self.o == self.n:
            return torch.zeros(0)
        total = math.ceil(self.n * self._length / self.o)
        done = self._next * self.n
        last = math.ceil(total / self.n) - 1
        end = self._buf_start + self._buf.numel()
        pad = max(0, (last + 1) * self.o + self.context - end)
        self._buf = torch.cat([self._buf, torch.zeros(pad)])
        return self._blocks(last)[: max(0, total - done)]


def read_blocks(
    path: str | Path, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[torch.Tensor]:
    """Mono float32 blocks (N,) of `path` at `sample_rate`, read `block_seconds` at a time.

    NaN/inf samples, or a read failure mid-file, raise AudioFileError naming the file.
    """
    header = audio_header(path)
    block = max(1, int(block_seconds * header.sample_rate))
    resampler = StreamResampler(header.sample_rate, int(sample_rate))
    done = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                if not np.isfinite(data).all():
                    raise AudioFileError(
                        f"audio file {path} holds NaN/inf samples (in the block starting at "
                        f"{done / header.sample_rate:.2f} s)"
                    )
                done += data.shape[0]
                out = resampler.push(torch.from_numpy(data.mean(axis=1)))
                if out.numel():
                    yield out
    except AudioFileError:
        raise
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioFileError(
            f"cannot read audio file {path}: {' '.join(str(err).split())}"
        ) from err
    tail = resampler.finish()
    if tail.numel():
        yield tail
