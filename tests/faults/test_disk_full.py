"""Disk full while writing: the memory-mapped caches reserve their file's blocks before writing
through the map (a full disk was a bus error, exit 135, temp file left), and every write names
the file and removes what it wrote. Real failures come from RLIMIT_FSIZE in a child process
(writes past the limit fail with EFBIG once SIGXFSZ is ignored); ENOSPC from a fake
`os.posix_fallocate`."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from distill.caches.records import RecordCache

FP = {"data": "d1"}
ONE = np.float32(1.0).tobytes()
needs_fallocate = pytest.mark.skipif(
    not hasattr(os, "posix_fallocate"), reason="no os.posix_fallocate on this system"
)

# runs `distill` (or a snippet) with writes limited to LIMIT bytes per file
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
"""


def run_limited(limit: int, code: str, *args: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(LIMITED) + textwrap.dedent(code)
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
    return subprocess.run(
        [sys.executable, "-c", script, str(limit), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def rows(n: int, size: int = 1000):
    """Batches of records of `size` float32 each."""
    for start in range(0, n, 4):
        ids = [f"clip{i}" for i in range(start, min(n, start + 4))]
        yield ids, {"features": np.ones((len(ids), size), np.float32)}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


@needs_fallocate
def test_records_file_is_reserved_before_it_is_written(tmp_path: Path, monkeypatch) -> None:
    """The whole file's blocks are reserved before the first record goes through the map (the
    records are float 1.0s: their bytes are not in the file yet when it is reserved)."""
    reserved: list[tuple[int, int, bool]] = []
    real = os.posix_fallocate

    def spy(fd: int, offset: int, length: int) -> None:
        written = ONE in os.pread(fd, os.fstat(fd).st_size, 0)
        reserved.append((offset, length, written))
        real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", spy)
    path = RecordCache(tmp_path, FP).write_rows("train", rows(10), total=10)
    assert reserved == [(0, path.stat().st_size, False)]
    assert ONE in path.read_bytes()


@needs_fallocate
def test_full_disk_while_reserving_names_the_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    cache = RecordCache(tmp_path, FP)
    cache.write_rows("train", rows(4), total=4)
    assert cache.has("train")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*train\.npy'") as err:
        cache.write_rows("train", rows(10), total=10)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(tmp_path / "train.npy")
    assert leftovers(tmp_path) == [] and not cache.has("train")


def test_feature_cache_past_the_file_size_limit_is_one_line_naming_the_file(
    faults_setup: dict, tmp_path: Path
) -> None:
    """`distill fit` building its feature cache with every file limited to 64 kB (the train split
    needs about 270 kB): exit 2, one line naming train.npy, no temporary file, no index."""
    cache_dir = tmp_path / "fc"
    done = run_limited(
        64_000,
        "from distill.cli import main; sys.exit(main(sys.argv[1:]))",
        "fit",
        str(faults_setup["recipe"]),
        "teacher.kind=none",
        f"data.feature_cache_dir={cache_dir}",
        "--run-dir",
        str(tmp_path / "run"),
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr[-2000:]
    assert last.startswith("distill: error: [Errno 27] File too large: '"), last
    assert last.endswith("/train.npy'"), last
    assert "Traceback" not in done.stderr
    assert leftovers(cache_dir) == [] and not list(cache_dir.glob("*/train.json"))  # no index


def test_writes_past_the_limit_name_the_file_and_leave_nothing_behind(tmp_path: Path) -> None:
    """One child process, writes limited to 4 kB: write_json, a student file (safetensors,
    whose writer reports "(os error 27)" inside a SafetensorError), np.savez through atomic_path
    (the run's attention samples) and a saved teacher. Each names its file, no temporary file
    stays, and the files that were there before are unchanged."""
    old = ("results.json", "student.safetensors", "samples.npz")
    for name in old:
        (tmp_path / name).write_text("old\n")
    done = run_limited(
        4096,
        """
        import sys, torch, numpy as np
        from pathlib import Path
        from distill.files import atomic_path, write_json
        from distill.students.hub import write_student_file
        from distill.teachers.saved import save_teacher

        folder = Path(sys.argv[1])
        info = {"name": "tc_resnet8", "num_classes": 2, "n_features": 40, "kwargs": {}}

        def samples():
            with atomic_path(folder / "samples.npz") as tmp, open(tmp, "wb") as fh:
                np.savez(fh, a=np.zeros(4096))

        attempts = {
            "results.json": lambda: write_json(folder / "results.json", {"x": "y" * 10000}),
            "student.safetensors": lambda: write_student_file(
                folder / "student.safetensors", {"w": torch.zeros(4096)}, info
            ),
            "samples.npz": samples,
            "teacher": lambda: save_teacher(
                torch.nn.Linear(100, 100), folder / "teacher", "inhouse", {"preset": "tiny"}
            ),
        }
        for name, attempt in attempts.items():
            try:
                attempt()
            except OSError as err:
                print(name, err.errno, err.filename)
        """,
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        *(f"{name} 27 {tmp_path / name}" for name in old),
        f"teacher 27 {tmp_path / 'teacher' / 'model.safetensors'}",
    ]
    assert leftovers(tmp_path) == []
    assert all((tmp_path / name).read_text() == "old\n" for name in old)
    assert list((tmp_path / "teacher").iterdir()) == []  # no weights without their config
