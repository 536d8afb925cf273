"""What every clip dataset shares: items, epochs and variants, seeding, limits, bad-file reports.

Randomness of an item (mixture, crop, augmentation) comes only from
``numpy.random.default_rng([seed, stream, split, draw, index])``, never from worker state, so an
item is a pure function of (seed, split, draw, index). `draw` is 0 for validation/test, the
epoch for training, or ``epoch % train_variants`` when `train_variants` > 0.

The epoch reaches worker processes through the index itself: `__getitem__` takes either an int
(uses the epoch last given to `set_epoch`) or an ``(epoch, index)`` pair, which is what
`distill.data.datamodule.EpochSampler` yields.

Bad files: headers are checked when a dataset is built (unreadable or empty files raise, or with
`skip_bad_files` are left out, warned about and listed in `dataset.skipped`). NaN/inf samples
are found when a clip is loaded: they raise, or with `skip_bad_files` the item is replaced by
the next clip with a warning (inside loader workers such late skips are warned about there,
and `skipped` of the main process does not see them).
"""

from __future__ import annotations

from distill.errors import BadValueError

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from distill.data.audio import AudioFileError, fix_length, load_audio, make_spans

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
    "eval": "test",
    "testing": "test",
}
SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
# random streams: independent draws for each purpose
STREAM_MIX, STREAM_AUG, STREAM_CROP, STREAM_SILENCE = 1, 2, 3, 4
UNKNOWN, SILENCE = "_unknown_", "_silence_"


def canonical_split(split: str) -> str:
    """'train' | 'validation' | 'test' from a split name or alias (val, eval, ...)."""
    try:
        return SPLIT_ALIASES[str(split).lower()]
    except KeyError:
        raise BadValueError(
            f"unknown split {split!r}; expected one of {', '.join(SPLIT_ALIASES)}"
        ) from None


def rng_for(seed: int, stream: int, split: str, draw: int, index: int) -> np.random.Generator:
    """The generator for one purpose of one item."""
    return np.random.default_rng([int(seed), stream, SPLIT_CODE[split], int(draw), int(index)])


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator."""
    return torch.Generator().manual_seed(int(rng.integers(0, 2**62)))


def limited(n: int, limit: int) -> list[int]:
    """Indices kept by a `limit`: the first `limit` of a fixed (seed-independent) permutation,
    returned in their original order, so a small limit still covers the classes."""
    if limit <= 0 or limit >= n:
        return list(range(n))
    return sorted(np.random.default_rng(0).permutation(n)[:limit].tolist())


def crop_wave(
    wave: torch.Tensor, n: int, mode: str, rng: np.random.Generator
) -> tuple[torch.Tensor, int]:
    """`fix_length` with a generator drawn from `rng` when the mode is random."""
    gen = torch_generator(rng) if mode == "random" else None
    return fix_length(wave, n, mode, gen)


@dataclass
class Entry:
    """One listed clip: source file (None for synthetic silence), target, id, source events."""

    path: str | None
    target: int | list[int]
    clip_id: str
    events: list[tuple[float, float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, turn ints/floats into tensors, keep strings as lists."""
    if not items:
        raise BadValueError("collate got an empty list of items")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, bool | int):
            batch[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(first, float):
            batch[key] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[key] = list(values)
    return batch


def report_skipped(name: str, skipped: list[tuple[str, str]]) -> None:
    """Warn (and log) how many files were skipped and which."""
    if not skipped:
        return
    shown = "; ".join(f"{p} ({why})" for p, why in skipped[:20])
    more = f"; ... and {len(skipped) - 20} more (see dataset.skipped)" if len(skipped) > 20 else ""
    msg = f"{name}: skipped {len(skipped)} bad file(s): {shown}{more}"
    log.warning(msg)
    warnings.warn(msg, stacklevel=3)


class ClipDataset(Dataset):
    """Base of the clip datasets: subclasses fill `entries` and implement `_load`."""

    #: whether training audio varies with the draw (mixing, random crop); augmentation adds to it
    random_train_audio = False
    #: suffix of validation/test clip ids
    eval_suffix = ""

    def __init__(
        self,
        split: str,
        sample_rate: int,
        clip_seconds: float,
        seed: int = 0,
        train_variants: int = 0,
        skip_bad_files: bool = False,
        augment: Any = None,
    ) -> None:
        self.split = canonical_split(split)
        if clip_seconds <= 0:
            raise BadValueError(f"clip_seconds must be > 0, given {clip_seconds}")
        if train_variants < 0:
            raise BadValueError(f"train_variants must be >= 0, given {train_variants}")
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.clip_samples = int(round(clip_seconds * sample_rate))
        self.seed = int(seed)
        self.train_variants = int(train_variants)
        self.skip_bad_files = bool(skip_bad_files)
        self.augment = augment if (augment is not None and self.split == "train") else None
        self.epoch = 0
        self.entries: list[Entry] = []
        self.skipped: list[tuple[str, str]] = []
        self.class_names: list[str] = []
        self.task = "single_label"

    # ----------------------------------------------------------------- set-up helpers
    def _finish(self, limit: int = 0) -> None:
        """Apply the limit, reject an empty dataset, report skipped files."""
        report_skipped(f"{type(self).__name__}[{self.split}]", self.skipped)
        if not self.entries:
            raise BadValueError(
                f"{type(self).__name__}: the {self.split} split has no clips ({self._where()})"
            )
        self.entries = [self.entries[i] for i in limited(len(self.entries), limit)]

    def _where(self) -> str:
        return f"root {getattr(self, 'root', '?')}"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def audio_is_fixed(self) -> bool:
        """True when a clip id always yields the same waveform (teacher outputs are cacheable)."""
        varies = self.random_train_audio or (self.augment is not None and self.augment.active)
        return not (self.split == "train" and varies and self.train_variants == 0)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for int indices (training mixtures/augmentation change per epoch)."""
        self.epoch = int(epoch)

    def draw(self, epoch: int) -> tuple[int, str]:
        """(draw, clip-id suffix) for this split at `epoch`."""
        if self.split != "train":
            return 0, self.eval_suffix
        varies = self.random_train_audio or (self.augment is not None and self.augment.active)
        if not varies:
            return 0, ""
        if self.train_variants > 0:
            v = epoch % self.train_variants
            return v, f"#v{v}"
        return epoch, f"#e{epoch}"

    def __len__(self) -> int:
        return len(self.entries)

    def _target(self, entry: Entry) -> int | torch.Tensor:
        if self.task == "multi_label":
            hot = torch.zeros(self.num_classes)
            hot[list(entry.target)] = 1.0
            return hot
        return int(entry.target)

    # ----------------------------------------------------------------- items
    def _load(self, entry: Entry, index: int, draw: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        """(waveform of clip_samples, offset, spans) for one entry."""
        raise NotImplementedError

    def item(self, index: int, epoch: int | None = None) -> dict[str, Any]:
        """The item at `index` for `epoch` (default: the epoch last set)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {len(self.entries)} clips")
        draw, suffix = self.draw(epoch)
        for attempt in range(len(self.entries)):
            idx = (index + attempt) % len(self.entries)
            entry = self.entries[idx]
            try:
                wave, offset, spans = self._load(entry, idx, draw)
                break
            except AudioFileError as err:
                if not self.skip_bad_files:
                    raise
                self.skipped.append((str(entry.path), str(err)))
                report_skipped(
                    f"{type(self).__name__}[{self.split}] (at load time, item "
                    f"{idx} replaced by the next one)",
                    [(str(entry.path), str(err))],
                )
        else:
            raise AudioFileError(f"every file of the {self.split} split failed to load")
        if self.augment is not None and self.augment.active:
            rng = rng_for(self.seed, STREAM_AUG, self.split, draw, idx)
            wave, offset, spans = self.augment(wave, offset, spans, rng)
        if wave.shape != (self.clip_samples,):
            raise AudioFileError(
                f"clip {entry.clip_id} produced a waveform of shape {tuple(wave.shape)}, "
                f"expected ({self.clip_samples},)"
            )
        return {
            "waveform": wave.float().contiguous(),
            "label": self._target(entry),
            "clip_id": entry.clip_id + suffix,
            "index": idx,
            "spans": spans,
            "offset": int(offset),
        }

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple | list):
            epoch, index = key
            return self.item(int(index), int(epoch))
        return self.item(int(key))


class CroppedClips(ClipDataset):
    """Variable-length clips cut to `clip_seconds`: training crops at random (a new crop per
    draw), validation/test use `crop` (center | start; random is drawn once per item)."""

    random_train_audio = True

    def __init__(self, *args: Any, crop: str = "center", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if crop not in ("center", "start", "random"):
            raise BadValueError(f"crop must be center | start | random, given {crop!r}")
        self.crop = crop

    def _load(self, entry: Entry, index: int, draw: int):
        wave = load_audio(entry.path, self.sample_rate)
        mode = "random" if self.split == "train" else self.crop
        rng = rng_for(self.seed, STREAM_CROP, self.split, draw, index)
        wave, offset = crop_wave(wave, self.clip_samples, mode, rng)
        spans = make_spans(entry.events, offset / self.sample_rate, self.clip_seconds)
        return wave, offset, spans
