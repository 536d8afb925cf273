"""The background-noise bank: coloured noise, babble, synthesised music, hum, and user recordings.

Files go to `<root>/_background_noise_/<type>_<nn>.wav` (16 kHz mono PCM16) and
`<root>/noise_splits.csv` assigns each file to train, validation or test (no file in two splits).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from distill.data.synth.common import parallel_map, rng_for
from distill.data.synth.dsp import SAMPLE_RATE, coloured_noise, resample, write_wav
from distill.data.synth.tts import BABBLE_LANGUAGES, ESPEAK_ACCENTS, espeak_variants, synthesize
from distill.data.synth.words import BABBLE_WORDS
from distill.errors import BadValueError, MissingFileError

NOISE_TYPES = ("white", "pink", "brown", "babble", "music", "hum")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
_TYPE_KEY = {name: i for i, name in enumerate(NOISE_TYPES)}


def split_of_index(i: int, n: int) -> str:
    """Split of the i-th of `n` files of one noise type: the last ~20% test, the ~20% before
    validation, the rest train (with fewer than 3 files, all train)."""
    if n < 3:
        return "train"
    held = max(1, round(n / 5))
    return "test" if i >= n - held else "validation" if i >= n - 2 * held else "train"


@dataclass(frozen=True)
class NoiseTask:
    """One synthetic noise file to make."""

    kind: str
    index: int
    seconds: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.index:02d}.wav"


def _babble(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    variants = espeak_variants()
    for _ in range(int(rng.integers(4, 9))):
        lang = rng.choice(list(ESPEAK_ACCENTS + BABBLE_LANGUAGES))
        voice = f"espeak:{lang}+{rng.choice(variants)}"
        rate, pitch = int(rng.integers(130, 220)), int(rng.integers(20, 80))
        talker, pos = np.zeros(n, np.float32), int(rng.integers(0, min(SAMPLE_RATE, n // 2)))
        while pos < n:
            words = rng.choice(BABBLE_WORDS, size=int(rng.integers(5, 15)))
            x = synthesize(voice, " ".join(words) + ".", rate, pitch, 50, int(rng.integers(2**31)))
            x = x[: n - pos]
            talker[pos : pos + len(x)] = x
            pos += len(x) + int(rng.uniform(0.1, 0.8) * SAMPLE_RATE)
        out += talker * 10 ** (rng.uniform(-8, 0) / 20)
    return out


def _note(freq: float, dur: int, timbre: tuple[float, bool], sr: int = SAMPLE_RATE) -> np.ndarray:
    slope, odd = timbre
    t = np.arange(dur) / sr
    y = np.zeros(dur, np.float32)
    for k in range(1, 9):
        if (odd and k % 2 == 0) or k * freq > sr / 2.2:
            continue
        y += np.sin(2 * np.pi * k * freq * t).astype(np.float32) / k**slope
    env = np.minimum(1.0, t / 0.01) * np.exp(-t * 2.5)
    return (y * env).astype(np.float32)


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    beat = int(60 / rng.uniform(70, 150) * SAMPLE_RATE)
    root = int(rng.integers(45, 58))
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
    chords_timbre = (float(rng.uniform(1.0, 2.5)), bool(rng.random() < 0.3))
    melody_timbre = (float(rng.uniform(0.8, 2.0)), bool(rng.random() < 0.5))

    def hz(midi: float) -> float:
        return 440.0 * 2 ** ((midi - 69) / 12)

    pos = 0
    while pos < n:
        degree = int(rng.choice([0, 3, 4, 5]))
        length = beat * int(rng.choice([2, 4]))
        for step in (0, 2, 4):
            d = degree + step
            midi = root + scale[d % 7] + 12 * (d // 7)
            note = _note(hz(midi), min(length, n - pos), chords_timbre) * 0.3
            out[pos : pos + len(note)] += note
        mpos = pos
        while mpos < min(n, pos + length):
            d = int(rng.integers(0, 10))
            midi = root + 12 + scale[d % 7] + 12 * (d // 7)
            dur = min(beat * int(rng.choice([1, 1, 2])) // int(rng.choice([1, 2])), n - mpos)
            out[mpos : mpos + dur] += _note(hz(midi), dur, melody_timbre) * 0.5
            mpos += dur
        pos += length
    return out


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    y = np.zeros(n)
    for k in range(1, 12):
        y += rng.uniform(0, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    y *= 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t)
    fan = coloured_noise(n, "brown", rng)
    sos = signal.butter(2, rng.uniform(200, 1500), fs=SAMPLE_RATE, output="sos")
    y = y / (np.sqrt(np.mean(y**2)) + 1e-9) + rng.uniform(0.2, 1.5) * signal.sosfilt(sos, fan)
    return y.astype(np.float32)


def _level(x: np.ndarray) -> np.ndarray:
    """RMS -20 dBFS, lowered if that would put the peak above -1 dBFS."""
    x = x - x.mean()
    x = x * (0.1 / (np.sqrt(np.mean(x**2)) + 1e-12))
    peak = np.max(np.abs(x))
    return (x * min(1.0, 0.89 / peak)).astype(np.float32)


def make_noise(task: NoiseTask) -> tuple[str, np.ndarray]:
    """The file name and the waveform of one synthetic noise file."""
    rng = rng_for(task.seed, 1_000, _TYPE_KEY[task.kind], task.index)
    n = int(task.seconds * SAMPLE_RATE)
    if task.kind in ("white", "pink", "brown"):
        x = coloured_noise(n, task.kind, rng)
    elif task.kind == "babble":
        x = _babble(n, rng)
    elif task.kind == "music":
        x = _music(n, rng)
    elif task.kind == "hum":
        x = _hum(n, rng)
    else:
        raise BadValueError(f"unknown noise type {task.kind!r}; expected one of {NOISE_TYPES}")
    return task.name, _level(x)


def find_audio(folder: Path) -> list[Path]:
    """Audio files under `folder` (recursively), sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"--noise-dir {folder}: not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise MissingFileError(
            f"--noise-dir {folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})"
        )
    return files


def write_noise_bank(
    root: Path,
    seconds: float,
    per_type: int,
    seed: int,
    workers: int,
    noise_dir: Path | None = None,
) -> list[dict[str, str]]:
    """Write the noise bank and `noise_splits.csv` under `root`; returns one row per file
    (file, split, source)."""
    if seconds <= 0 or per_type < 3:
        raise BadValueError(
            f"noise bank: need --noise-seconds > 0 and --noise-per-type >= 3 (one file per split), "
            f"got {seconds} and {per_type}"
        )
    folder = root / "_background_noise_"
    tasks = [NoiseTask(k, i, seconds, seed) for k in NOISE_TYPES for i in range(per_type)]
    rows = []
    for (name, x), task in zip(parallel_map(make_noise, tasks, workers, "noise"), tasks):
        write_wav(folder / name, x)
        rows.append(
            {"file": name, "split": split_of_index(task.index, per_type), "source": task.kind}
        )
    real = find_audio(noise_dir) if noise_dir else []
    for i, path in enumerate(real):
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        name = f"real_{i:02d}.wav"
        write_wav(folder / name, _level(resample(x.mean(axis=1), sr)))
        rows.append({"file": name, "split": split_of_index(i, len(real)), "source": str(path)})
    with open(root / "noise_splits.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "split"])
        writer.writerows([r["file"], r["split"]] for r in rows)
    return rows
