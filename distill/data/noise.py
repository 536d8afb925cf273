"""Background-noise bank: long noise files held in memory, split-disjoint, cut into segments.

Split policy (documented behaviour):
- if the root has `noise_splits.csv` (`file,split`), each `_background_noise_` file belongs
  whole to the split it is assigned to (files not listed are an error);
- otherwise (real Speech Commands) each noise file is cut in time: the first 80 % serves
  training, the next 10 % validation, the last 10 % test, so no noise sample is shared between
  splits.
A segment longer than a file's region wraps around inside that region (the region is looped).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from distill.data.audio import AudioFileError, load_audio, power
from distill.data.base import canonical_split
from distill.errors import BadValueError, MissingFileError

NOISE_DIR = "_background_noise_"
NOISE_SPLITS_FILE = "noise_splits.csv"
TIME_FRACTIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


class NoiseBank:
    """Noise waveforms of one split, each with the sample region this split may use."""

    def __init__(
        self,
        names: list[str],
        waves: list[torch.Tensor],
        regions: list[tuple[int, int]],
        paths: list[str] | None = None,
        skipped: list[tuple[str, str]] | None = None,
    ) -> None:
        if not names:
            raise BadValueError("a noise bank needs at least one noise file")
        self.names, self.waves, self.regions = names, waves, regions
        self.paths = list(paths) if paths is not None else []  # the files read (for fingerprints)
        self.skipped = list(skipped or [])  # (path, reason) of bad files left out

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_root(
        cls, root: str | Path, split: str, sample_rate: int, skip_bad_files: bool = False
    ) -> NoiseBank:
        """The noise of `split` from `root/_background_noise_` (see module doc for the policy)."""
        root = Path(root)
        split = canonical_split(split)
        folder = root / NOISE_DIR
        if not folder.is_dir():
            raise MissingFileError(
                f"noise folder {folder} does not exist (needed for silence items, noisy mixing "
                "or noise augmentation)"
            )
        files = sorted(p.name for p in folder.glob("*.wav"))
        if not files:
            raise BadValueError(f"noise folder {folder} holds no .wav files")
        split_file = root / NOISE_SPLITS_FILE
        if split_file.is_file():
            assigned = _read_noise_splits(split_file, files)
            chosen = [(f, (0.0, 1.0)) for f in files if assigned[f] == split]
            if not chosen:
                raise BadValueError(f"{split_file} assigns no noise file to the {split} split")
        else:
            chosen = [(f, TIME_FRACTIONS[split]) for f in files]
        names, waves, regions, skipped = [], [], [], []
        for name, (lo, hi) in chosen:
            path = folder / name
            try:
                wave = load_audio(path, sample_rate)
            except AudioFileError as err:
                if skip_bad_files:
                    import warnings

                    warnings.warn(f"skipping noise file: {err}", stacklevel=2)
                    skipped.append((str(path), str(err)))
                    continue
                raise
            a, b = int(lo * wave.shape[0]), int(hi * wave.shape[0])
            if b - a < 1 or power(wave[a:b]) == 0.0:
                raise AudioFileError(
                    f"noise file {path} has no usable audio in its {split} region "
                    f"[{lo:.0%}, {hi:.0%}) ({b - a} samples, all zero or empty)"
                )
            names.append(name)
            waves.append(wave)
            regions.append((a, b))
        if not names:
            raise BadValueError(f"no usable noise file for the {split} split in {folder}")
        return cls(names, waves, regions, [str(folder / n) for n in names], skipped)

    def choose(self, n: int, rng: np.random.Generator) -> tuple[int, int]:
        """A random (file index, start sample) for a segment of `n` samples."""
        k = int(rng.integers(0, len(self.names)))
        a, b = self.regions[k]
        width = b - a
        start = a + int(rng.integers(0, width - n + 1 if width >= n else width))
        return k, start

    def segment(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, str, int]:
        """A random segment of `n` samples: (wave, file name, start sample in that file)."""
        k, start = self.choose(n, rng)
        return self.cut(k, start, n), self.names[k], start

    def cut(self, k: int, start: int, n: int) -> torch.Tensor:
        """`n` samples of file `k` from `start`, wrapping inside the file's region."""
        a, b = self.regions[k]
        if start + n <= b:
            return self.waves[k][start : start + n]  # a view: callers must not write to it
        idx = a + (start - a + torch.arange(n)) % (b - a)
        return self.waves[k][idx]


def _read_noise_splits(path: Path, files: list[str]) -> dict[str, str]:
    """file -> canonical split from noise_splits.csv; every noise file must be listed."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file", "split"} <= set(reader.fieldnames):
            raise BadValueError(f"{path} must have the columns file,split; has {reader.fieldnames}")
        assigned = {}
        for row in reader:
            try:
                assigned[Path(row["file"]).name] = canonical_split(row["split"])
            except ValueError as err:
                raise BadValueError(f"{path}: {err} (row {row})") from None
    missing = [f for f in files if f not in assigned]
    if missing:
        raise BadValueError(f"{path} does not assign a split to noise file(s) {', '.join(missing)}")
    return assigned
