"""`--recordings DIR`: a user's own takes of the keywords, mixed into the bank.

Layout (any of wav, flac, ogg, mp3, aiff; any sample rate; mono or stereo):

    DIR/<word>/<take>.wav                     one speaker (named after DIR)
    DIR/<word>/<speaker>/<take>.wav           several speakers
    DIR/<word>/<speaker>_nohash_<k>.wav       Speech Commands style

`<word>` is a bank label (a phrase's folder has `_` for spaces, e.g. `hey_robot`). Each speaker
gets the id `r` + 7 hex digits of a hash of its name, and one split: with fewer than 3 speakers
all are train (few-shot: your voice teaches, the synthetic held-out voices test); with 3 or more,
~10 % validation and ~10 % test (at least one each), so splits stay speaker-disjoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from distill.data.synth.common import rng_for
from distill.data.synth.dsp import active_span, resample
from distill.data.synth.noise import AUDIO_SUFFIXES
from distill.errors import BadValueError, MissingFileError


@dataclass(frozen=True)
class Take:
    """One recorded take of a word."""

    label: str
    path: str
    speaker: str  # the user's name for the speaker
    speaker_id: str
    split: str


def speaker_id(name: str) -> str:
    """The bank speaker id of a recording speaker (never a TTS id: those are 8 hex digits)."""
    return "r" + hashlib.sha1(name.encode()).hexdigest()[:7]


def _speaker_of(folder: Path, word_dir: Path, path: Path) -> str:
    rel = path.relative_to(word_dir)
    if len(rel.parts) > 1:
        return rel.parts[0]
    if "_nohash_" in path.stem:
        return path.stem.split("_nohash_")[0]
    return folder.name


def _splits(names: list[str], seed: int) -> dict[str, str]:
    if len(names) < 3:
        return {n: "train" for n in names}
    order = rng_for(seed, 8).permutation(len(names))
    held = max(1, round(0.1 * len(names)))
    split = {names[int(i)]: "validation" for i in order[:held]}
    split.update({names[int(i)]: "test" for i in order[held : 2 * held]})
    return {n: split.get(n, "train") for n in names}


def scan(folder: Path, labels: list[str], seed: int) -> list[Take]:
    """Every take under `folder`; a word folder that is not a bank label is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"--recordings {folder}: not a directory")
    found: list[tuple[str, Path, str]] = []
    for word_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if word_dir.name not in labels:
            raise BadValueError(
                f"--recordings {word_dir}: {word_dir.name!r} is not a word of the bank {labels}"
            )
        for path in sorted(word_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                found.append((word_dir.name, path, _speaker_of(folder, word_dir, path)))
    if not found:
        raise MissingFileError(
            f"--recordings {folder}: no audio files in <word>/ folders "
            f"({', '.join(AUDIO_SUFFIXES)})"
        )
    names = sorted({s for _, _, s in found}, key=speaker_id)
    ids = {n: speaker_id(n) for n in names}
    if len(set(ids.values())) < len(ids):
        raise BadValueError(f"--recordings {folder}: two speaker names hash to one id")
    split = _splits(names, seed)
    return [Take(lab, str(p), s, ids[s], split[s]) for lab, p, s in found]


def load_take(path: str) -> np.ndarray:
    """A take as 16 kHz mono float32, trimmed to its speech (within 40 dB of its loudest frame);
    an unreadable or silent file is an error naming it."""
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise BadValueError(f"--recordings {path}: not a readable audio file ({err})") from err
    x = resample(x.mean(axis=1), sr)
    start, end = active_span(x, threshold_db=-40.0, frame=80)
    if end <= start:
        raise BadValueError(f"--recordings {path}: silent")
    speech = x[start:end]
    return (speech - np.mean(speech)).astype(np.float32)
