"""Stream files: numbered wav files written block by block, and real negative recordings.

A real negative folder is any folder of wav/flac/ogg files (searched recursively; LibriSpeech or
DiPCo as downloaded work as they are). Each file is read `PIECE_SECONDS` at a time, mixed down to
mono and resampled, so a long recording is never held whole. Where LibriSpeech transcripts
(`*.trans.txt`) are present, the utterances that say a keyword are left out and listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from distill.data.audio import AudioFileError, check_headers
from distill.data.synth.dsp import resample
from distill.errors import BadValueError, MissingFileError
from distill.files import atomic_path

REAL_SUFFIXES = (".wav", ".flac", ".ogg")
PEAK = 0.98  # louder audio is scaled down to this peak (a whole segment or piece at a time)
PIECE_SECONDS = 30.0  # real recordings are read and resampled this much at a time


@dataclass(frozen=True)
class StreamInfo:
    """One stream file: kind 'negative' or 'positive', source 'synthetic' or 'real'."""

    name: str
    path: Path
    kind: str
    source: str
    seconds: float


class StreamWriter:
    """Appends blocks to numbered 16-bit wav files `<prefix>_NNN.wav` of at most `limit` samples
    each, each written atomically; use as a context manager (an error removes the open file)."""

    def __init__(self, root: Path, prefix: str, kind: str, source: str, sr: int, limit: int):
        self.root, self.prefix, self.kind, self.source = root, prefix, kind, source
        self.sr, self.limit = sr, limit
        self.streams: list[StreamInfo] = []
        self._file: sf.SoundFile | None = None
        self._ctx: Any = None
        self.n = 0

    def room(self) -> int:
        """Samples left in the current file (a whole file's worth when it is full or none)."""
        left = self.limit - self.n
        return left if self._file is not None and left > 0 else self.limit

    def write(self, block: np.ndarray) -> tuple[str, float]:
        """Write `block`; returns (stream name, its start in seconds in that stream)."""
        if self._file is None or (self.n > 0 and self.n + len(block) > self.limit):
            self.close()
            name = f"{self.prefix}_{len(self.streams):03d}"
            self._ctx = atomic_path(self.root / f"{name}.wav")
            tmp = self._ctx.__enter__()
            self._file = sf.SoundFile(tmp, "w", self.sr, 1, "PCM_16", format="WAV")
            path = self.root / f"{name}.wav"
            self.streams.append(StreamInfo(name, path, self.kind, self.source, 0.0))
            self.n = 0
        start = self.n
        self._file.write(np.asarray(block, np.float64))
        self.n += len(block)
        return self.streams[-1].name, start / self.sr

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        self.close(error)

    def close(self, error: BaseException | None = None) -> None:
        """Finish the open file (or, after `error`, remove it)."""
        if self._file is not None:
            self._file.close()
            self._ctx.__exit__(type(error) if error else None, error, None)
            last = self.streams[-1]
            seconds = self.n / self.sr
            self.streams[-1] = StreamInfo(last.name, last.path, last.kind, last.source, seconds)
            self._file = None


def real_files(folder: Path, keywords: tuple[str, ...]) -> tuple[list[Path], dict[str, Any]]:
    """Audio files of a real negative folder (recursive, sorted) and a report; LibriSpeech
    `*.trans.txt` transcripts, where present, exclude utterances that say a keyword."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"real negative folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in REAL_SUFFIXES)
    if not files:
        raise MissingFileError(
            f"real negative folder {folder} holds no audio ({', '.join(REAL_SUFFIXES)}); "
            "refusing to report false accepts over no audio"
        )
    said: dict[str, str] = {}
    for t in folder.rglob("*.trans.txt"):
        for line in t.read_text(errors="replace").splitlines():
            if line.strip():
                key, _, text = line.strip().partition(" ")
                said[key] = text.lower()
    words = "|".join(re.escape(k.replace("_", " ")) for k in keywords)
    pattern = re.compile(r"\b(" + words + r")\b")
    excluded = [str(p.relative_to(folder)) for p in files if pattern.search(said.get(p.stem, ""))]
    kept = [p for p in files if str(p.relative_to(folder)) not in set(excluded)]
    if not kept:
        raise BadValueError(f"every file of {folder} says a keyword; no negative audio is left")
    report = {
        "folder": str(folder),
        "files": len(kept),
        "excluded_saying_a_keyword": excluded,
        "without_transcript": sum(p.stem not in said for p in kept),
    }
    return kept, report


def write_real(
    out: Path,
    folder: Path,
    keywords: tuple[str, ...],
    sr: int,
    limit: int,
    total: int | None,
    skip_bad_files: bool = False,
) -> tuple[list[StreamInfo], dict[str, Any]]:
    """Write the real negative folder as `neg_real_NNN.wav` streams of at most `limit` samples,
    `total` samples in all (None: all of it), at `sr` Hz mono; the streams and a report."""
    files, report = real_files(folder, keywords)
    infos, skipped = check_headers([str(p) for p in files], skip_bad_files)
    made = 0
    with StreamWriter(out, "neg_real", "negative", "real", sr, limit) as w:
        for path in (p for p in files if str(p) in infos):
            if total is not None and made >= total:
                break
            with sf.SoundFile(str(path)) as f:
                native = f.samplerate
                while total is None or made < total:
                    x = f.read(round(PIECE_SECONDS * native), dtype="float64", always_2d=True)
                    if len(x) == 0:
                        break
                    if not np.isfinite(x).all():
                        raise AudioFileError(f"audio file {path} holds NaN/inf samples")
                    y = resample(x.mean(axis=1), native, sr).astype(np.float64)
                    y = y[: None if total is None else total - made]
                    peak = float(np.max(np.abs(y))) if len(y) else 0.0
                    if len(y):
                        w.write(y * (PEAK / peak if peak > PEAK else 1.0))
                    made += len(y)
    return w.streams, report | {"skipped": skipped, "seconds": made / sr}


__all__ = ["PEAK", "StreamInfo", "StreamWriter", "real_files", "write_real"]
