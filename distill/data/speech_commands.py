"""Google Speech Commands (v1/v2) and banks in its layout (the synthetic `synth_kws` bank).

Layout: ``<word>/<speaker>_nohash_<k>.wav``, ``validation_list.txt`` and ``testing_list.txt``
(relative paths; every other clip is training), ``_background_noise_/*.wav``. A synthetic bank
adds ``manifest.csv`` (``path,label,speaker,split,onset,offset,...``) giving the speech onset and
offset inside each clip, and ``noise_splits.csv``.

Class sets (`classes`):
- "12": yes no up down left right on off stop go, then `_unknown_` (every other word) and
  `_silence_`; `unknown_ratio` r keeps r x (mean keyword-class size) `_unknown_` clips per split
  (fixed by a hash of the path; the recipe default 1.0 balances it like one keyword, close to the
  TF setup's 10%; 0 keeps all);
- "35": the 35 words of v2 (all must be present), "all": every word folder, sorted;
- a list (or comma-separated string) of words; it may hold `_unknown_` (then words not in the
  list map to it; without it such a word is an error) and `_silence_`.
`_silence_` items: ``ceil(n_words / 10)`` per split (about 1/11 of the split, as in the standard
setup), each a clip of that split's background noise (see `distill.data.noise`) at a gain drawn
uniformly from [0, 1]; file, start and gain are fixed per (seed, split, clip id). Random crops
(`crop: random`) are drawn from the clip id too, never from the clip's position in the list.
"""

from __future__ import annotations

import csv
import math
import zlib
from pathlib import Path
from typing import Any

from distill.config.schema import DataConfig
from distill.data.audio import check_headers, empty_spans, load_audio, make_spans, place
from distill.data.base import (
    SILENCE,
    STREAM_CROP,
    STREAM_SILENCE,
    UNKNOWN,
    ClipDataset,
    Entry,
    crop_wave,
    rng_for,
)
from distill.data.noise import NoiseBank
from distill.data.registry import register_dataset
from distill.errors import BadValueError, MissingFileError

CORE_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
V1_WORDS = sorted(
    CORE_WORDS
    + [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "bed",
        "bird",
        "cat",
        "dog",
        "happy",
        "house",
        "marvin",
        "sheila",
        "tree",
        "wow",
    ]
)
V2_WORDS = sorted(V1_WORDS + ["backward", "forward", "follow", "learn", "visual"])
SPLIT_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}


def bank_words(root: str | Path) -> list[str]:
    """Word folders of a Speech Commands-style root (folders not starting with _ or .)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"data root {root} does not exist")
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )


def bank_version(words: list[str]) -> str:
    """'v1' (30 words), 'v2' (35 words) or 'custom'."""
    if sorted(words) == V2_WORDS:
        return "v2"
    if sorted(words) == V1_WORDS:
        return "v1"
    return "custom"


def resolve_classes(root: str | Path, classes: str | list[str]) -> list[str]:
    """Class names of a `classes` setting on this bank (see module doc)."""
    words = bank_words(root)
    if not words:
        raise BadValueError(f"data root {root} has no word folders (expected <word>/*.wav)")
    spec = classes
    if isinstance(spec, str):
        spec = spec.strip()
        if spec == "12":
            names = CORE_WORDS + [UNKNOWN, SILENCE]
        elif spec == "35":
            missing = sorted(set(V2_WORDS) - set(words))
            if missing:
                raise BadValueError(
                    f"classes '35' needs the 35 Speech Commands v2 words but {root} "
                    f"({bank_version(words)}, {len(words)} words) lacks {', '.join(missing)}; "
                    "use classes 'all' or a list"
                )
            names = list(V2_WORDS)
        elif spec == "all":
            names = list(words)
        else:
            names = [w.strip() for w in spec.split(",") if w.strip()]
    else:
        names = [str(w).strip() for w in spec]
    if len(set(names)) != len(names) or not names:
        raise BadValueError(f"classes {classes!r} must be a non-empty list without duplicates")
    missing = [w for w in names if w not in (UNKNOWN, SILENCE) and w not in words]
    if missing:
        raise BadValueError(f"classes {', '.join(missing)} have no folder in {root}")
    return names


def read_split_lists(root: Path) -> dict[str, set[str]]:
    """validation/test relative paths from the list files (each must exist)."""
    lists = {}
    for split, name in SPLIT_LISTS.items():
        path = root / name
        if not path.is_file():
            raise MissingFileError(
                f"split file {path} does not exist (Speech Commands layout "
                "needs validation_list.txt and testing_list.txt)"
            )
        lists[split] = {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}
    return lists


def read_manifest(root: Path) -> dict[str, dict[str, str]] | None:
    """relative path -> manifest row of a synthetic bank, or None without manifest.csv."""
    path = root / "manifest.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"path", "onset", "offset"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise BadValueError(
                f"{path} must have the columns {sorted(need)}; has {reader.fieldnames}"
            )
        return {row["path"]: row for row in reader}


def list_keywords(
    root: Path, split: str, class_names: list[str], skip_bad_files: bool
) -> tuple[list[Entry], list[tuple[str, str]], dict]:
    """Keyword entries of a split (label, events in source seconds, speaker, header info)."""
    manifest = read_manifest(root)
    chosen, skipped = split_files(root, split, skip_bad_files)
    infos, bad = check_headers([str(root / rel) for rel in chosen], skip_bad_files)
    skipped += bad
    entries = [
        keyword_entry(root, rel, infos[str(root / rel)], class_names, manifest)
        for rel in chosen
        if str(root / rel) in infos
    ]
    return entries, skipped, {"manifest": manifest is not None}


def split_files(
    root: Path, split: str, skip_bad_files: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """(word/file.wav paths of `split`, skipped (path, reason)): the split lists decide
    validation and test, every other file of a word folder is train."""
    lists = read_split_lists(root)
    all_files = {f"{w}/{p.name}" for w in bank_words(root) for p in (root / w).glob("*.wav")}
    skipped: list[tuple[str, str]] = []
    for s, listed in lists.items():
        for rel in sorted(listed - all_files):
            msg = f"{rel} is listed in {root / SPLIT_LISTS[s]} but does not exist"
            if not skip_bad_files:
                raise MissingFileError(msg)
            skipped.append((str(root / rel), msg))
    chosen = []
    for rel in sorted(all_files):
        in_split = (
            "validation"
            if rel in lists["validation"]
            else "test"
            if rel in lists["test"]
            else "train"
        )
        if in_split == split:
            chosen.append(rel)
    return chosen, skipped


def keyword_entry(
    root: Path, rel: str, info: Any, class_names: list[str], manifest: dict | None
) -> Entry:
    """The entry of one keyword file: its label (or _unknown_), span and speaker."""
    index = {w: i for i, w in enumerate(class_names)}
    word = rel.split("/")[0]
    if word in index:
        label = index[word]
    elif UNKNOWN in index:
        label = index[UNKNOWN]
    else:
        raise BadValueError(
            f"word '{word}' of {root / rel} is not among the classes {class_names} and "
            "there is no _unknown_ class; add '_unknown_' to data.classes"
        )
    if manifest is not None:
        row = manifest.get(rel)
        if row is None:
            raise BadValueError(f"{rel} has no row in {root / 'manifest.csv'}")
        events = [(float(row["onset"]), float(row["offset"]))]
        speaker = row.get("speaker") or rel.split("/")[1].split("_nohash_")[0]
    else:
        events = [(0.0, info.seconds)]
        speaker = rel.split("/")[1].split("_nohash_")[0]
    return Entry(
        str(root / rel), label, rel, events, {"speaker": speaker, "word": word, "info": info}
    )


def subsample_unknown(entries: list[Entry], class_names: list[str], ratio: float) -> list[Entry]:
    """Keep `ratio` x (mean keyword-class size) `_unknown_` entries, chosen by a fixed hash of
    their path so every construction keeps the same ones; ratio 0 keeps all."""
    if ratio <= 0 or UNKNOWN not in class_names:
        return entries
    unknown = class_names.index(UNKNOWN)
    known = [e for e in entries if e.target != unknown]
    others = [e for e in entries if e.target == unknown]
    n_classes = len({e.target for e in known})
    if not known or n_classes == 0:
        return entries
    keep = min(len(others), math.ceil(ratio * len(known) / n_classes))
    ids = [e.clip_id.encode("utf-8", "surrogateescape") for e in others]  # names not UTF-8 too
    chosen = set(sorted(range(len(others)), key=lambda i: zlib.crc32(ids[i]))[:keep])
    return known + [e for i, e in enumerate(others) if i in chosen]


def silence_entries(n_words: int, class_names: list[str]) -> list[Entry]:
    """`ceil(n_words / 10)` silence entries when `_silence_` is a class."""
    if SILENCE not in class_names:
        return []
    label = class_names.index(SILENCE)
    return [
        Entry(None, label, f"{SILENCE}/{k:06d}", [], {"silence": k})
        for k in range(math.ceil(n_words / 10))
    ]


class SpeechCommands(ClipDataset):
    """Speech Commands clips, padded/cropped to `clip_seconds` with the `crop` policy."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        classes: str | list[str] = "12",
        sample_rate: int = 16000,
        clip_seconds: float = 1.0,
        crop: str = "start",
        seed: int = 0,
        train_variants: int = 0,
        skip_bad_files: bool = False,
        limit: int = 0,
        augment=None,
        unknown_ratio: float = 0.0,
    ) -> None:
        super().__init__(
            split, sample_rate, clip_seconds, seed, train_variants, skip_bad_files, augment
        )
        self.root = Path(root)
        self.crop = crop
        self.random_train_audio = crop == "random"
        self.class_names = resolve_classes(self.root, classes)
        self.words = bank_words(self.root)
        self.version = bank_version(self.words)
        self.entries, self.skipped, meta = list_keywords(
            self.root, self.split, self.class_names, self.skip_bad_files
        )
        self.has_manifest = meta["manifest"]
        self.entries = subsample_unknown(self.entries, self.class_names, unknown_ratio)
        self.entries += silence_entries(len(self.entries), self.class_names)
        self.noise = (
            NoiseBank.from_root(self.root, self.split, sample_rate, skip_bad_files)
            if SILENCE in self.class_names
            else None
        )
        self._finish(limit)

    def _load(self, entry: Entry, index: int, draw: int):
        n = self.clip_samples
        if entry.path is None:  # silence
            rng = rng_for(self.seed, STREAM_SILENCE, self.split, 0, entry.clip_id)
            noise, _, start = self.noise.segment(n, rng)
            return noise * float(rng.uniform(0.0, 1.0)), start, empty_spans()
        wave = load_audio(entry.path, self.sample_rate)
        wave = place(wave, self._source_len(entry), 0)
        rng = rng_for(self.seed, STREAM_CROP, self.split, draw, entry.clip_id)
        wave, offset = crop_wave(wave, n, self.crop, rng)
        spans = make_spans(entry.events, offset / self.sample_rate, self.clip_seconds)
        return wave, offset, spans

    def _source_len(self, entry: Entry) -> int:
        """Samples of the entry at the dataset rate, from its header."""
        info = entry.meta["info"]
        return math.ceil(info.frames * self.sample_rate / info.sample_rate)

    def speakers(self) -> set[str]:
        """Speakers of this split's keyword clips."""
        return {e.meta["speaker"] for e in self.entries if e.path is not None}


def config_classes(cfg: DataConfig) -> list[str]:
    """The classes of a keyword data section: `data.classes` resolved against `data.root`."""
    return resolve_classes(cfg.root, cfg.classes)


@register_dataset("speech_commands", task="single_label", class_names=config_classes)
def build_speech_commands(cfg: DataConfig, split: str, **common: Any) -> SpeechCommands:
    """A split of Speech Commands in its published layout (`data.name: speech_commands`)."""
    return SpeechCommands(
        cfg.root,
        split,
        classes=cfg.classes,
        crop=cfg.crop,
        unknown_ratio=cfg.unknown_ratio,
        **common,
    )
