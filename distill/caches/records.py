"""Record caches: per-split memory-mappable records checked against a fingerprint.

`RecordCache` is one `<split>.npy` (a structured record per clip) and a `<split>.json` index
(clip ids, fingerprint) per split, plus `data-files/<split>.json`, the content hash of every
data file the split was built from, so a stale cache can name the files that changed. Files are
written under temporary names and renamed; the index is written last, so a killed build never
leaves a split that looks complete.
`TeacherCache` holds teacher logits, temporal attention (and hidden states) per clip; the
feature cache (`distill.caches.feature_cache`) holds student input features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from distill.errors import BadValueError, DistillError, MissingFileError
from distill.files import (
    lock_folder,
    naming_errors,
    preallocate,
    temp_path_for,
    write_json,
    write_text,
)

FINGERPRINT_PARTS = ("teacher", "rollout", "data", "crop")

Rows = Iterable[tuple[list[str], dict[str, np.ndarray]]]


class StaleCacheError(DistillError, RuntimeError):
    """The cache on disk was built for another teacher, dataset, crop policy or frontend."""


def sha256_of_tensors(state: dict[str, Tensor]) -> str:
    """Hash of a state dict's names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def sha256_of_json(obj: object) -> str:
    """Hash of a JSON-serialisable object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sha256_of_files(paths: Iterable[Path]) -> str:
    """Hash of the names and contents of the files that exist among `paths`."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def describe_file_changes(before: dict[str, str], now: dict[str, str], shown: int = 5) -> str:
    """'2 files changed: a.wav, b.wav; 1 file removed: c.wav; ...' ('' when equal); at most
    `shown` names per kind, then '(+N more)'."""
    kinds = (
        ("changed", sorted(k for k in before.keys() & now.keys() if before[k] != now[k])),
        ("removed", sorted(before.keys() - now.keys())),
        ("added", sorted(now.keys() - before.keys())),
    )
    parts = []
    for kind, names in kinds:
        if names:
            more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
            noun = "file" if len(names) == 1 else "files"
            parts.append(f"{len(names)} {noun} {kind}: {', '.join(names[:shown])}{more}")
    return "; ".join(parts)


def write_records(
    records_path: Path, index_path: Path, rows: Rows, total: int, index: dict, what: str
) -> None:
    """Write `total` records `(clip_ids, {field: array})` and then their index, atomically.

    The record dtype is taken from the first batch's arrays (their dtypes and trailing shapes).
    `what` names the cache in errors.
    """
    records_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_records = temp_path_for(records_path)
    index_path.unlink(missing_ok=True)  # the old split stops looking complete right away
    clip_ids: list[str] = []
    array = None
    try:
        for ids, arrays in rows:
            if array is None:
                dtype = np.dtype([(k, a.dtype, a.shape[1:]) for k, a in arrays.items()])
                with naming_errors(records_path, tmp_records):  # disk full: an OSError naming
                    array = np.lib.format.open_memmap(  # the file, not a bus error later
                        tmp_records, mode="w+", dtype=dtype, shape=(total,)
                    )
                    preallocate(tmp_records)
            start, stop = len(clip_ids), len(clip_ids) + len(ids)
            if stop > total:
                raise BadValueError(f"{what} got more than the {total} clips announced")
            for name, values in arrays.items():
                array[name][start:stop] = values
            clip_ids.extend(ids)
        if len(clip_ids) != total:
            raise BadValueError(f"{what} got {len(clip_ids)} clips, expected {total}")
        if len(set(clip_ids)) != len(clip_ids):
            raise BadValueError(f"{what}: clip ids are not unique")
        array.flush()
        del array
        os.replace(tmp_records, records_path)
        write_json(index_path, {**index, "clip_ids": clip_ids, "complete": True})
    finally:
        tmp_records.unlink(missing_ok=True)


def map_records(path: Path, what: str) -> np.ndarray:
    """Memory-map a records file read-only; StaleCacheError naming it when it is damaged."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, EOFError) as err:  # truncated, or not a .npy file
        raise StaleCacheError(f"{what} {path} is damaged ({err}): delete it to rebuild") from err


class RecordCache:
    """A folder of per-split records, checked against the expected fingerprint."""

    #: how errors name this cache, and the command that builds / rebuilds it
    what = "cache"
    build_hint = ""
    rebuild_hint = ""
    parts: tuple[str, ...] = ()

    def __init__(
        self,
        directory: str | Path,
        fingerprint: dict[str, str],
        files: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.fingerprint = dict(fingerprint)
        #: content hash per data file (`distill.caches.fingerprint.data_files`), kept beside
        #: each split so that a stale cache names the changed files; None: not known
        self.files = dict(files) if files is not None else None
        self._splits: dict[str, tuple[np.ndarray, dict]] = {}

    def paths(self, split: str) -> tuple[Path, Path]:
        """(records file, index file) of a split."""
        return self.directory / f"{split}.npy", self.directory / f"{split}.json"

    def files_path(self, split: str) -> Path:
        """The file holding the data files' hashes a split was built from."""
        return self.directory / "data-files" / f"{split}.json"

    def has(self, split: str) -> bool:
        """Whether a complete, up-to-date split is on disk."""
        try:
            self.check(split)
        except (FileNotFoundError, StaleCacheError):
            return False
        return True

    def check(self, split: str) -> dict:
        """The split's index, or an error naming what is missing or what changed."""
        records, index_path = self.paths(split)
        if not index_path.is_file() or not records.is_file():
            raise MissingFileError(
                f"{self.what} for split '{split}' is missing or incomplete in {self.directory}"
                f"{self.build_hint}"
            )
        try:
            index = json.loads(index_path.read_text())
        except ValueError as err:  # damaged (e.g. a disk that filled up before the atomic writes)
            damaged = f"{self.what} index {index_path} is damaged ({err})"
            raise StaleCacheError(damaged + self.rebuild_hint) from err
        cached = index.get("fingerprint", {})
        changed = [p for p in self.parts if cached.get(p) != self.fingerprint.get(p)]
        if changed:
            detail = "; ".join(self._describe(p, cached.get(p), split) for p in changed)
            raise StaleCacheError(f"{self.what} {index_path} is stale: {detail}{self.rebuild_hint}")
        return index

    def _describe(self, part: str, cached: str | None, split: str) -> str:
        """What changed in one fingerprint part (for `data`: the files, when both are known)."""
        plain = f"{part} changed (cached {cached}, now {self.fingerprint.get(part)})"
        if part != "data" or self.files is None:
            return plain
        try:
            before = json.loads(self.files_path(split).read_text())
        except (OSError, ValueError):
            return plain
        files = describe_file_changes(before, self.files)
        return f"{plain}: {files}" if files else f"{plain}: the data listing settings changed"

    def open(self, split: str) -> tuple[np.ndarray, dict]:
        """Memory-map a split: (records, index)."""
        if split not in self._splits:
            index = self.check(split)
            records = map_records(self.paths(split)[0], self.what)
            if len(records) != len(index["clip_ids"]):
                raise StaleCacheError(
                    f"{self.what} {self.paths(split)[0]} holds {len(records)} records but its "
                    f"index lists {len(index['clip_ids'])} clips: rebuild it"
                )
            self._splits[split] = (records, index)
        return self._splits[split]

    def write_rows(self, split: str, rows: Rows, total: int, **index: object) -> Path:
        """Write a split's records atomically (extra `index` entries are kept in its index),
        holding the cache folder's lock: a build of the same cache by another process meanwhile
        is refused naming this PID (FolderLockedError)."""
        records_path, index_path = self.paths(split)
        with lock_folder(self.directory, self.what):
            index_path.unlink(missing_ok=True)  # the old split stops looking complete first
            if self.files is not None:  # written before the index: a complete split has it
                self.files_path(split).parent.mkdir(exist_ok=True)
                body = json.dumps(self.files, separators=(",", ":"))
                write_text(self.files_path(split), body + "\n")
            self._write(records_path, index_path, rows, total, index, split)
        return records_path

    def _write(self, records_path, index_path, rows, total, index, split) -> None:
        index = {"fingerprint": self.fingerprint, **index}
        write_records(records_path, index_path, rows, total, index, f"{self.what} '{split}'")
        self._splits.pop(split, None)
