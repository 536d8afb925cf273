"""FSD50K (and the synthetic `synth_events` set in its layout): multi-label sound events.

Layout: ``FSD50K.dev_audio/<fname>.wav``, ``FSD50K.eval_audio/<fname>.wav``,
``FSD50K.ground_truth/{dev.csv (fname,labels,mids,split), eval.csv (fname,labels,mids),
vocabulary.csv (no header: index,label,mid)}``. Splits: train/validation = dev.csv rows with
split train/val, test = eval.csv. Labels are multi-hot in vocabulary.csv order. Optional
``events_manifest.csv`` (``fname,split,label,onset,offset``) gives event spans, shifted by the
crop; without it spans are NaN.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from distill.config.schema import DataConfig
from distill.data.audio import check_headers
from distill.data.base import CroppedClips, Entry, canonical_split
from distill.data.registry import register_dataset
from distill.errors import BadValueError, MissingFileError

GT_DIR = "FSD50K.ground_truth"
AUDIO_DIRS = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def read_vocabulary(root: str | Path) -> list[str]:
    """Class names in vocabulary.csv order (rows `index,label,mid`, no header)."""
    path = Path(root) / GT_DIR / "vocabulary.csv"
    if not path.is_file():
        raise MissingFileError(f"vocabulary file {path} does not exist")
    names: dict[int, str] = {}
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), 1):
            if not row:
                continue
            if len(row) < 2 or not row[0].strip().isdigit():
                raise BadValueError(
                    f"{path} line {line_no}: expected 'index,label,mid' (no header), got {row}"
                )
            names[int(row[0])] = row[1].strip()
    if sorted(names) != list(range(len(names))) or not names:
        raise BadValueError(f"{path}: indices must run 0..N-1, got {sorted(names)[:10]}...")
    return [names[i] for i in range(len(names))]


def _read_events(root: Path) -> dict[tuple[str, str], list[tuple[float, float]]] | None:
    """(dev|eval, fname) -> event (onset, offset) list, from events_manifest.csv if present."""
    path = root / "events_manifest.csv"
    if not path.is_file():
        return None
    events: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"fname", "split", "onset", "offset"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise BadValueError(
                f"{path} must have the columns {sorted(need)}; has {reader.fieldnames}"
            )
        for row in reader:
            group = "eval" if canonical_split(row["split"]) == "test" else "dev"
            events.setdefault((group, row["fname"]), []).append(
                (float(row["onset"]), float(row["offset"]))
            )
    return events


class FSD50K(CroppedClips):
    """FSD50K clips (multi-hot targets), cropped/padded to `clip_seconds`."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
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
        self.root = Path(root)
        self.task = "multi_label"
        self.class_names = read_vocabulary(self.root)
        index = {name: i for i, name in enumerate(self.class_names)}
        group = "eval" if self.split == "test" else "dev"
        gt = self.root / GT_DIR / f"{group}.csv"
        if not gt.is_file():
            raise MissingFileError(f"ground-truth file {gt} does not exist")
        events = _read_events(self.root)
        audio_dir = self.root / AUDIO_DIRS[group]
        rows = []
        with open(gt, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"fname", "labels"} | ({"split"} if group == "dev" else set())
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise BadValueError(
                    f"{gt} must have the columns {sorted(need)}; has {reader.fieldnames}"
                )
            for row in reader:
                if group == "dev" and canonical_split(row["split"]) != self.split:
                    continue
                labels = [lb.strip() for lb in row["labels"].split(",") if lb.strip()]
                unknown = [lb for lb in labels if lb not in index]
                if unknown or not labels:
                    raise BadValueError(
                        f"{gt}: clip {row['fname']} has label(s) {unknown or labels!r} not in "
                        f"the vocabulary {self.root / GT_DIR / 'vocabulary.csv'}"
                    )
                rows.append((row["fname"], sorted({index[lb] for lb in labels})))
        paths = [str(audio_dir / f"{fname}.wav") for fname, _ in rows]
        infos, self.skipped = check_headers(paths, self.skip_bad_files)
        for (fname, target), path in zip(rows, paths):
            if path in infos:
                ev = events.get((group, fname), []) if events is not None else []
                self.entries.append(Entry(path, target, f"{AUDIO_DIRS[group]}/{fname}", ev))
        self._finish(limit)


def vocabulary_classes(cfg: DataConfig) -> list[str]:
    """The classes of an FSD50K-layout data section, in vocabulary.csv order."""
    return read_vocabulary(cfg.root)


@register_dataset(
    "fsd50k", task="multi_label", classes_from="vocabulary.csv", class_names=vocabulary_classes
)
def build_fsd50k(cfg: DataConfig, split: str, **common: Any) -> FSD50K:
    """A split of FSD50K in its published layout (`data.name: fsd50k`)."""
    return FSD50K(cfg.root, split, crop=cfg.crop, **common)


@register_dataset(
    "synth_events",
    task="multi_label",
    classes_from="vocabulary.csv",
    class_names=vocabulary_classes,
)
def build_synth_events(cfg: DataConfig, split: str, **common: Any) -> FSD50K:
    """A set from `distill data synth-events` (`synth_events`; its events_manifest.csv gives
    the per-event onsets and is required)."""
    if not (Path(cfg.root) / "events_manifest.csv").is_file():
        raise MissingFileError(
            f"{cfg.root}/events_manifest.csv does not exist: a synth_events root needs it (use "
            "data.name fsd50k for real FSD50K)"
        )
    return FSD50K(cfg.root, split, crop=cfg.crop, **common)
