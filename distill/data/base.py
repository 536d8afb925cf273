"""What every clip dataset shares: items, epochs and variants, seeding, limits, bad-file reports.

Randomness of an item (mixture, crop, augmentation) comes only from
``numpy.random.default_rng([seed, stream, split, draw, clip_key(clip_id)])``, never from worker
state or the item's position, so an item is a pure function of (seed, split, draw, clip id):
adding or removing a file changes no other clip's audio. `draw` is 0 for validation/test, the
epoch for training, or ``epoch % train_variants`` when `train_variants` > 0. A `limit` keeps
the clips whose ids hash lowest (`limited`), again independent of the other files.

The epoch reaches worker processes through the index itself: `__getitem__` takes either an int
(uses the epoch last given to `set_epoch`) or an ``(epoch, index)`` pair, which is what
`distill.data.datamodule.EpochSampler` yields.

Bad files: headers are checked when a dataset is built (unreadable or empty files raise, or with
`skip_bad_files` are left out). With `skip_bad_files` the samples of every kept clip are also
read once when the dataset is built (NaN/inf, undecodable data; the result is remembered per
file version in the data root's file index, `distill.data.file_index`), so a bad file is left
out before any work and never replaced by another clip: the split simply has fewer clips. The
skipped files are warned about once, listed in `dataset.skipped` and, for `distill fit`, in
`results.json` (`skipped_files`). Without `skip_bad_files` a clip with NaN/inf samples raises
when it is loaded, naming the file; so does a file that turns bad after the dataset was built.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from distill.data.audio import AudioFileError, fix_length, load_audio, make_spans
from distill.data.file_index import FileIndex
from distill.errors import BadValueError

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


def clip_key(clip_id: str) -> int:
    """A stable 128-bit number of a clip id (what seeds the clip's random draws)."""
    digest = hashlib.sha256(str(clip_id).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:16], "big")


def rng_for(seed: int, stream: int, split: str, draw: int, clip_id: str) -> np.random.Generator:
    """The generator for one purpose of one clip, from its id (never its position)."""
    if not isinstance(clip_id, str):
        raise BadValueError(f"rng_for needs the clip id (a string), given {clip_id!r}")
    key = clip_key(clip_id)
    return np.random.default_rng([int(seed), stream, SPLIT_CODE[split], int(draw), key])


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator."""
    return torch.Generator().manual_seed(int(rng.integers(0, 2**62)))


def ranked(clip_ids: Sequence[str]) -> list[int]:
    """Positions of the clips ordered by a fixed hash of their ids (seed-independent)."""
    return sorted(range(len(clip_ids)), key=lambda i: (clip_key(clip_ids[i]), i))


def limited(clip_ids: Sequence[str], limit: int) -> list[int]:
    """Positions kept by a `limit`: the `limit` clips whose ids hash lowest, in their original
    order, so a small limit still covers the classes and does not depend on the other files."""
    if limit <= 0 or limit >= len(clip_ids):
        return list(range(len(clip_ids)))
    return sorted(ranked(clip_ids)[:limit])


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


def skipped_files(datasets: Iterable[Any]) -> list[dict[str, str]] | None:
    """The files left out of `datasets` (and their noise banks) as {path, reason}, each file
    once, in path order; None when none of them skips bad files (data.skip_bad_files off)."""
    datasets = list(datasets)
    if not any(getattr(ds, "skip_bad_files", False) for ds in datasets):
        return None
    found: dict[str, str] = {}
    for ds in datasets:
        banks = (getattr(ds, "noise", None), getattr(ds.augment, "noise_bank", None))
        extra = [pair for bank in banks if bank is not None for pair in bank.skipped]
        for path, reason in [*ds.skipped, *extra]:
            found.setdefault(str(path), " ".join(str(reason).split()))
    return [{"path": path, "reason": found[path]} for path in sorted(found)]


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
        """Apply the limit, leave out clips whose samples are bad (`skip_bad_files`), reject an
        empty dataset, report skipped files once."""
        if self.skip_bad_files:
            keep = self._readable(ranked([e.clip_id for e in self.entries]), limit)
        else:
            keep = limited([e.clip_id for e in self.entries], limit)
        self.entries = [self.entries[i] for i in keep]
        report_skipped(f"{type(self).__name__}[{self.split}]", self.skipped)
        if not self.entries:
            raise BadValueError(
                f"{type(self).__name__}: the {self.split} split has no clips ({self._where()})"
            )

    def _readable(self, order: list[int], limit: int) -> list[int]:
        """Positions (sorted) of the first `limit` entries in `order` (all when 0) whose samples
        read cleanly; the others go to `skipped`. Checks are remembered per file version."""
        want = limit if limit > 0 else len(order)
        index: FileIndex | None = None
        good: list[int] = []
        start = 0
        while len(good) < want and start < len(order):
            batch = order[start : start + want - len(good)]
            start += len(batch)
            paths = [self.entries[i].path for i in batch if self.entries[i].path is not None]
            if paths and index is None:
                index = self._file_index()
            problems = index.sample_problems(paths) if paths else {}
            for i in batch:
                why = problems.get(str(self.entries[i].path))
                if why:
                    self.skipped.append((str(self.entries[i].path), why))
                else:
                    good.append(i)
        if index is not None:
            index.save()
        return sorted(good)

    def _file_index(self) -> FileIndex:
        """The file index of this dataset's root (or of its files' common folder)."""
        root = getattr(self, "root", None)
        if root is None:
            paths = [os.path.abspath(e.path) for e in self.entries if e.path is not None]
            root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else "."
        return FileIndex(root)

    def source_files(self) -> list[str]:
        """Every file this split's items read: clip files, and the noise files of the dataset
        and of its waveform augmentation (sorted, each once)."""
        files = {str(e.path) for e in self.entries if e.path is not None}
        for bank in (getattr(self, "noise", None), getattr(self.augment, "noise_bank", None)):
            if bank is not None:
                files.update(str(p) for p in bank.paths)
        return sorted(files)

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
        """(waveform of clip_samples, offset, spans) for one entry at `draw`; random draws come
        from `rng_for(..., entry.clip_id)`, never from `index` (the entry's position)."""
        raise NotImplementedError

    def item(self, index: int, epoch: int | None = None) -> dict[str, Any]:
        """The item at `index` for `epoch` (default: the epoch last set)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {len(self.entries)} clips")
        draw, suffix = self.draw(epoch)
        entry = self.entries[index]
        wave, offset, spans = self._load(entry, index, draw)
        if self.augment is not None and self.augment.active:
            rng = rng_for(self.seed, STREAM_AUG, self.split, draw, entry.clip_id)
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
            "index": index,
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
        rng = rng_for(self.seed, STREAM_CROP, self.split, draw, entry.clip_id)
        wave, offset = crop_wave(wave, self.clip_samples, mode, rng)
        spans = make_spans(entry.events, offset / self.sample_rate, self.clip_seconds)
        return wave, offset, spans
