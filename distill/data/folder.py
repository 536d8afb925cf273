"""User data in one of two layouts (checked in this order):

1. ``root/labels.csv`` with columns ``path,label[,split]``: `path` relative to `root`; `label`
   one class or, for multi-label data, several separated by commas (quote the field:
   ``clips/a.wav,"dog,bark",train``); `split` train | validation (val) | test.
2. ``root/<class>/*.{wav,flac,ogg}``: the folder name is the class; optional
   ``validation_list.txt`` / ``testing_list.txt`` (relative paths) as in Speech Commands.

Without split information a clip's split is fixed by the CRC32 of its relative path:
remainder mod 10 of 0 -> test, 1 -> validation, else train (about 80/10/10).
Clips are cropped/padded like FSD50K (random crop for training, `crop` otherwise); spans NaN.
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Any

from distill.config.schema import DataConfig
from distill.data.audio import check_headers
from distill.data.base import UNKNOWN, CroppedClips, Entry, canonical_split
from distill.data.registry import register_dataset
from distill.errors import BadValueError, MissingFileError

LABELS_FILE = "labels.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def hash_split(rel: str) -> str:
    """Split of a clip without split information (see module doc)."""
    r = zlib.crc32(rel.encode("utf-8", "surrogateescape")) % 10
    return "test" if r == 0 else "validation" if r == 1 else "train"


def read_folder_table(root: Path) -> list[tuple[str, list[str], str]]:
    """(relative path, labels, split) of every clip of the root, in either layout."""
    table = root / LABELS_FILE
    rows: list[tuple[str, list[str], str]] = []
    if table.is_file():
        with open(table, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
                raise BadValueError(
                    f"{table} must have the columns path,label[,split]; has {reader.fieldnames}"
                )
            for line_no, row in enumerate(reader, 2):
                labels = [lb.strip() for lb in (row["label"] or "").split(",") if lb.strip()]
                if not labels:
                    raise BadValueError(f"{table} line {line_no}: empty label for {row['path']}")
                split_value = (row.get("split") or "").strip()
                try:
                    split = canonical_split(split_value) if split_value else hash_split(row["path"])
                except ValueError as err:
                    raise BadValueError(f"{table} line {line_no}: {err}") from None
                rows.append((row["path"], labels, split))
        return rows
    if not root.is_dir():
        raise MissingFileError(f"data root {root} does not exist")
    lists = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        if path.is_file():
            lists[split] = {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in AUDIO_SUFFIXES:
                rel = f"{folder.name}/{f.name}"
                split = next((s for s, listed in lists.items() if rel in listed), None)
                if split is None:
                    split = "train" if lists else hash_split(rel)
                rows.append((rel, [folder.name], split))
    if not rows:
        raise BadValueError(f"data root {root} has neither {LABELS_FILE} nor <class>/*.wav clips")
    return rows


class FolderDataset(CroppedClips):
    """Labelled clips from a user folder (see module doc for the layouts)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        classes: str | list[str] = "all",
        task: str = "single_label",
        sample_rate: int = 16000,
        clip_seconds: float = 1.0,
        crop: str = "center",
        seed: int = 0,
        train_variants: int = 0,
        skip_bad_files: bool = False,
        limit: int = 0,
        augment=None,
    ) -> None:
        super().__init__(
            split,
            sample_rate,
            clip_seconds,
            seed,
            train_variants,
            skip_bad_files,
            augment,
            crop=crop,
        )
        if task not in ("single_label", "multi_label"):
            raise BadValueError(f"task must be single_label | multi_label, given {task!r}")
        self.root = Path(root)
        self.task = task
        table = read_folder_table(self.root)
        self.class_names = self._classes(classes, table)
        index = {c: i for i, c in enumerate(self.class_names)}
        chosen = []
        for rel, labels, split in table:
            if task == "single_label" and len(labels) > 1:
                raise BadValueError(
                    f"clip {self.root / rel} has several labels {labels} but the "
                    "task is single_label (set data.task multi_label)"
                )
            targets = []
            for lb in labels:
                if lb in index:
                    targets.append(index[lb])
                elif UNKNOWN in index:
                    targets.append(index[UNKNOWN])
                else:
                    raise BadValueError(
                        f"clip {self.root / rel} has label {lb!r} not among the "
                        f"classes {self.class_names}"
                    )
            if split == self.split:
                target = sorted(set(targets)) if task == "multi_label" else targets[0]
                chosen.append((rel, target))
        paths = [str(self.root / rel) for rel, _ in chosen]
        infos, self.skipped = check_headers(paths, self.skip_bad_files)
        self.entries = [Entry(p, t, rel) for (rel, t), p in zip(chosen, paths) if p in infos]
        self._finish(limit)

    def _classes(self, classes: str | list[str], table) -> list[str]:
        found = sorted({lb for _, labels, _ in table for lb in labels})
        if isinstance(classes, str) and classes.strip() == "all":
            return found
        if isinstance(classes, str) and classes.strip() in ("12", "35"):
            raise BadValueError(
                f"classes {classes!r} is a Speech Commands set; for a folder dataset "
                "use 'all' or a comma-separated list of class names"
            )
        names = (
            [c.strip() for c in classes.split(",") if c.strip()]
            if isinstance(classes, str)
            else [str(c) for c in classes]
        )
        missing = [c for c in names if c != UNKNOWN and c not in found]
        if missing:
            raise BadValueError(f"classes {missing} do not occur in {self.root}")
        return names


@register_dataset("folder")
def build_folder(cfg: DataConfig, split: str, **common: Any) -> FolderDataset:
    """Clips in class folders or a labels.csv (`data.name: folder`; data.task decides)."""
    return FolderDataset(
        cfg.root, split, classes=cfg.classes, task=cfg.task, crop=cfg.crop, **common
    )
