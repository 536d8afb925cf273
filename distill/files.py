"""Writing files atomically: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # no flock (Windows): the PID in the lock file is the lock
    fcntl = None  # type: ignore[assignment]

TMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)" + re.escape(TMP_SUFFIX) + "$")


def temp_path_for(path: str | Path) -> Path:
    """The hidden temporary file `.NAME.PID.tmp` beside `path` that a write goes to first."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def naming_file(err: OSError, path: str | Path, tmp: str | Path | None = None) -> OSError:
    """`err` with `path` as its file name when it names no file (a failed write: disk full, file
    too large) or only the temporary file `tmp`; other errors are returned as they are."""
    if err.errno is None or err.filename not in (None, str(tmp) if tmp is not None else None):
        return err
    named = OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))
    named.__cause__ = err
    return named


# how native (Rust) writers such as safetensors word an OS error: "... (os error 28)"
_NATIVE_OS_ERROR = re.compile(r"\(os error ([0-9]+)\)")


@contextmanager
def naming_errors(path: str | Path, tmp: str | Path | None = None) -> Iterator[None]:
    """Within the block, an OSError that names no file (or only `tmp`) is raised naming `path`
    (see `naming_file`), and so is the OS error inside a native library's error (safetensors
    raises "I/O error: No space left on device (os error 28)" as a SafetensorError)."""
    try:
        yield
    except OSError as err:
        named = naming_file(err, path, tmp)
        if named is err:
            raise
        raise named from err
    except Exception as err:
        found = _NATIVE_OS_ERROR.search(str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from err


def preallocate(path: str | Path) -> None:
    """Reserve disk space for the whole current length of `path` (a file about to be written
    through a memory map), so that a full disk is an OSError here rather than a bus error
    (SIGBUS) when a page of the map is written. A no-op where the OS cannot reserve space."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path`, on any error (disk
    full, interrupt) it is removed and `path` is left as it was. An OSError that names no file
    (a write that found the disk full) is raised naming `path`."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with naming_errors(path, tmp):
            yield tmp
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: str | Path, depth: int = 1) -> list[Path]:
    """Remove the temporary files `.NAME.PID.tmp` (`temp_path_for`) that processes no longer
    running left in `folder` and its subfolders down to `depth` levels (a run or cache build
    killed while writing); returns the files removed. Files of live processes are kept."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 0:
                removed += remove_stale_temps(entry.path, depth - 1)
            continue
        match = _TEMP_NAME.match(entry.name)
        if match is None or not _exited(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove
        removed.append(Path(entry.path))
    return removed


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON (with a final newline) to `path` atomically."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")


# -- folder locks --------------------------------------------------------------------------------

LOCK_FILE = ".distill.lock"


class FolderLockedError(BlockingIOError):
    """Another live process holds the lock of a run directory or cache folder (an OSError, so
    the command line prints it as one line)."""


class FolderLock:
    """An exclusive OS lock (`fcntl.flock`) on `<folder>/.distill.lock`, which names the holder.

    The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a
    lock file left by a dead process never blocks: the next process takes it over and
    `took_over_from` is that dead PID. Where the file system has no `flock`, the PID written in
    the file is the lock: a live PID refuses, a dead one is taken over. Released by `release`,
    on leaving a `with` block, when the object is garbage collected, or at exit.
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self.took_over_from: int | None = None
        #: temporary files of exited processes removed when the lock was taken
        self.removed_temps: list[Path] = []
        self._owner = os.getpid()
        self._count = 0  # acquisitions by this process not yet released
        self._fd: list[int] = []  # the open descriptor while held (shared with the finalizer)
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return bool(self._fd)

    def acquire(self) -> FolderLock:
        """Take the lock (again: counted, when this process holds it already) or raise
        FolderLockedError naming the holder's PID."""
        if self.held and self._owner == os.getpid():
            self._count += 1
            return self
        self._owner = os.getpid()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                state = _try_flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if state == "busy":
                os.close(fd)
                raise FolderLockedError(self._refusal(_holder_of(self.path)))
            if state == "unsupported" or _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file as we locked it: lock the new one
        else:
            raise FolderLockedError(f"{self.what} {self.folder}: cannot keep hold of {self.path}")
        locked = state == "locked"
        previous = _read_holder(fd)
        if not locked and previous and _alive(*previous) and previous[0] != os.getpid():
            os.close(fd)
            raise FolderLockedError(self._refusal(previous))
        if previous and previous[0] != os.getpid() and not _alive(*previous):
            self.took_over_from = previous[0]
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd.append(fd)
        self._count = 1
        self._finalizer = weakref.finalize(self, _unlock, self._fd, self.path, os.getpid(), locked)
        self.removed_temps = remove_stale_temps(self.folder)  # the folder is ours now
        return self

    def release(self) -> None:
        """Undo one `acquire`; the last one removes the lock file and drops the lock."""
        self._count -= 1
        if self._count <= 0 and self._finalizer is not None:
            self._count = 0
            self._finalizer()

    def __enter__(self) -> FolderLock:
        """`with FolderLock(f):` or `with lock_folder(f):` holds the lock for the block."""
        return self if self.held and self._owner == os.getpid() else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _refusal(self, holder: tuple[int, str] | None) -> str:
        where = f"{self.what} {self.folder}"
        if holder is None:
            return f"{where} is in use by another process (lock {self.path}): try again later"
        pid, host = holder
        if not _alive(pid, host):
            return (
                f"{where} is locked by a process started by PID {pid}, which has exited (e.g. "
                f"a data-loader worker still running; lock {self.path}): end it or try again"
            )
        return (
            f"{where} is in use by process {pid} on {host} (lock {self.path}): wait for it "
            "to finish, or use another folder"
        )


_HELD: weakref.WeakValueDictionary[str, FolderLock] = weakref.WeakValueDictionary()


def lock_folder(
    folder: str | Path,
    what: str = "folder",
    wait_seconds: float = 0.0,
    poll_seconds: float = 0.5,
    notify: Callable[[str], None] | None = None,
) -> FolderLock:
    """Hold the folder's lock (see FolderLock) for as long as the returned object lives.

    Within one process the lock is shared: asking again for a folder this process already holds
    returns the same lock. Another process asking gets FolderLockedError naming this PID, at once
    or, with `wait_seconds`, once it has waited that long for the holder to let go; `notify`
    is then told once, with the holder named, that the caller is waiting.
    """
    key = os.path.realpath(folder)
    held = _HELD.get(key)
    if held is not None and held.held and held._owner == os.getpid():
        return held.acquire()
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            lock = FolderLock(folder, what).acquire()
            break
        except FolderLockedError:
            if time.monotonic() >= deadline:
                raise
            if notify is not None:
                notify(
                    f"{what} {folder} is in use by process {lock_holder(folder)}: waiting up "
                    f"to {wait_seconds:g} s for it to finish"
                )
                notify = None
            time.sleep(poll_seconds)
    _HELD[key] = lock
    return lock


def lock_holder(folder: str | Path) -> int | None:
    """The PID written in the folder's lock file (None when there is none)."""
    holder = _holder_of(Path(folder) / LOCK_FILE)
    return holder[0] if holder else None


def _try_flock(fd: int) -> str:
    """ "locked" when flock holds the file now, "busy" when another process holds it,
    "unsupported" where the file system has no flock (the PID in the file is then the lock)."""
    if fcntl is None:
        return "unsupported"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "busy"
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return "unsupported"
        raise
    return "locked"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> tuple[int, str] | None:
    """(PID, host) written in an open lock file, or None."""
    parts = os.pread(fd, 512, 0).decode("utf-8", "replace").split()
    if not parts or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1] if len(parts) > 1 else socket.gethostname()


def _holder_of(path: Path) -> tuple[int, str] | None:
    """(PID, host) in a lock file, waiting briefly for a holder that has not written it yet."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            holder = _read_holder(fd)
        finally:
            os.close(fd)
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


def _alive(pid: int, host: str) -> bool:
    """Whether a process runs under that PID (a process on another host counts as alive)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exited(pid: int) -> bool:
    """Whether no process of this host runs under `pid` (False for a number that is no PID)."""
    if not 0 < pid < 2**31:
        return False
    return not _alive(pid, socket.gethostname())


def _unlock(fds: list[int], path: Path, owner: int, locked: bool) -> None:
    """Drop a lock: only its owner removes the file and unlocks (a forked child's copy of the
    descriptor is just closed, leaving the parent's lock in place)."""
    if not fds:
        return
    fd = fds.pop()
    try:
        if os.getpid() == owner:
            if _same_file(fd, path):
                path.unlink(missing_ok=True)  # before unlocking: a waiter sees a new file
            if locked and fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = [
    "LOCK_FILE",
    "FolderLock",
    "FolderLockedError",
    "atomic_path",
    "lock_folder",
    "lock_holder",
    "naming_errors",
    "naming_file",
    "preallocate",
    "remove_stale_temps",
    "temp_path_for",
    "write_json",
    "write_text",
]
