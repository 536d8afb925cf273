"""Per-file facts of a dataset (content hash, sample check), computed once per file version.

Reading every file of a large dataset at every run is what this avoids: the first time a file
is hashed or its samples are checked, the result is stored with the file's size and
modification time (`st_size`, `st_mtime_ns`); later runs only `stat` the file and reuse the
result while both are unchanged.

Where the index lives: `<root>/.distill-hashes.json`, keys relative to the data root (paths
outside it are kept absolute). When the root cannot be written (read-only folder or file
system) the index goes to `<user cache>/file-index/<hash of the root's absolute path>.json`,
the user cache being `$DISTILL_CACHE_DIR`, else `$XDG_CACHE_HOME/distill`, else
`~/.cache/distill`; when neither can be written the results serve this process only and a
warning says so. Both files are written atomically (`distill.files`); two processes writing
at once lose at most each other's new entries, which are then recomputed.

Limits: a file rewritten with the same size and the same modification time (`cp -p`,
`touch -r`, a clock set back) is not seen. A result for a file modified less than
`RACY_SECONDS` before it was read is not stored (a rewrite within the same clock tick could
otherwise go unseen): such files are read again by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from distill.data.audio import sample_problem
from distill.errors import MissingFileError
from distill.files import write_text

INDEX_FILE = ".distill-hashes.json"
INDEX_VERSION = 1
RACY_SECONDS = 2.0
CACHE_DIR_ENV = "DISTILL_CACHE_DIR"


def user_cache_dir() -> Path:
    """distill's per-user cache folder (see the module doc)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "distill"


def sha256_of_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex, 32 digits)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:32]


class FileIndex:
    """The facts index of the files under one data root (see the module doc)."""

    def __init__(self, root: str | Path, workers: int = 8) -> None:
        self.root = Path(root)
        self.workers = workers
        absolute = os.path.abspath(self.root)
        key = hashlib.sha256(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.locations = (self.root / INDEX_FILE, user_cache_dir() / "file-index" / f"{key}.json")
        self.entries: dict[str, dict[str, Any]] = {}
        self.computed = 0  # files read by this object (hashed or sample-checked)
        self.saved_to: Path | None = None
        self._dirty = False
        for location in reversed(self.locations):  # the root's own index wins
            self.entries.update(_read_index(location))

    def key(self, path: str | Path) -> str:
        """The index key of a path: relative to the root when inside it, else absolute."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return os.path.abspath(path)

    def sha256s(self, paths: Iterable[str | Path]) -> dict[str, str]:
        """path -> content hash of each file (read only when not indexed for its version)."""
        return self._facts(paths, "sha256", sha256_of_file)

    def sample_problems(self, paths: Iterable[str | Path]) -> dict[str, str | None]:
        """path -> why its samples are unusable (unreadable, empty, NaN/inf) or None."""
        found = self._facts(paths, "samples", lambda p: sample_problem(p) or "")
        return {path: why or None for path, why in found.items()}

    def _facts(self, paths: Iterable[str | Path], name: str, compute: Callable) -> dict:
        paths = [str(p) for p in paths]
        stats = {p: _stat(p) for p in paths}
        result: dict[str, Any] = {}
        todo = []
        for path in paths:
            entry = self._current(path, stats[path])
            if entry is not None and name in entry:
                result[path] = entry[name]
            else:
                todo.append(path)
        if len(todo) > 1 and self.workers > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                values = list(pool.map(compute, todo))
        else:
            values = [compute(p) for p in todo]
        self.computed += len(todo)
        for path, value in zip(todo, values):
            result[path] = value
            self._remember(path, stats[path], name, value)
        return result

    def _current(self, path: str, stat: os.stat_result) -> dict[str, Any] | None:
        entry = self.entries.get(self.key(path))
        if (
            entry
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
        ):
            return entry
        return None

    def _remember(self, path: str, stat: os.stat_result, name: str, value: Any) -> None:
        if time.time_ns() - stat.st_mtime_ns < RACY_SECONDS * 1e9:
            return  # modified just now: a rewrite in the same clock tick would go unseen
        entry = self._current(path, stat) or {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        entry[name] = value
        self.entries[self.key(path)] = entry
        self._dirty = True

    def save(self) -> Path | None:
        """Write the index if it learnt something (at the root, else the user cache); returns
        where it went (None when nothing was new or nowhere could be written)."""
        if not self._dirty:
            return self.saved_to
        live = {k: v for k, v in self.entries.items() if self._exists(k)}
        for location in self.locations:
            try:
                merged = {**_read_index(location), **live}
                merged = {k: v for k, v in merged.items() if k in live or self._exists(k)}
                location.parent.mkdir(parents=True, exist_ok=True)
                body = {"version": INDEX_VERSION, "files": dict(sorted(merged.items()))}
                write_text(location, json.dumps(body, separators=(",", ":")) + "\n")
            except OSError:
                continue
            self._dirty, self.saved_to = False, location
            return location
        warnings.warn(
            f"cannot write the file index at {self.locations[0]} or {self.locations[1]}: "
            "file hashes and checks will be recomputed next run",
            stacklevel=2,
        )
        return None

    def _exists(self, key: str) -> bool:
        return (self.root / key).exists() if not os.path.isabs(key) else os.path.exists(key)


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise MissingFileError(f"data file {path} does not exist (removed while in use?)") from None


def _read_index(location: Path) -> dict[str, dict[str, Any]]:
    """The entries of an index file ({} when missing, unreadable or of another version)."""
    try:
        data = json.loads(location.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}
