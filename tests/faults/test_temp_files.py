"""Temporary files of killed processes (`.NAME.PID.tmp`, distill.files.temp_path_for) are removed
by the next process that takes the folder's lock (a run directory, a cache folder); before, a
cache build killed with SIGKILL left its partial records file for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from distill.caches.records import RecordCache
from distill.files import lock_folder, remove_stale_temps, temp_path_for

FP = {"data": "d1"}

KILLED_BUILD = """
import sys, time
import numpy as np
from distill.caches.records import RecordCache

def rows():
    yield ["a"], {"x": np.ones((1, 1000), np.float32)}
    print("writing", flush=True)
    time.sleep(600)
    yield ["b"], {"x": np.ones((1, 1000), np.float32)}

RecordCache(sys.argv[1], {"data": "d1"}).write_rows("train", rows(), total=2)
"""

HOLD_TEMP = """
import sys
from pathlib import Path
from distill.files import temp_path_for
temp_path_for(Path(sys.argv[1]) / "live.json").write_text("partial")
print("writing", flush=True)
sys.stdin.read()
"""


def start(script: str, folder: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
    return proc


def dead_pid() -> int:
    """The PID of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def test_cache_build_killed_mid_write_is_cleaned_by_the_next_build(tmp_path: Path) -> None:
    proc = start(KILLED_BUILD, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert temps(tmp_path) == [f".train.npy.{proc.pid}.tmp"]  # what the kill leaves

    def rows():
        yield ["a", "b"], {"x": np.zeros((2, 1000), np.float32)}

    cache = RecordCache(tmp_path, FP)
    cache.write_rows("train", rows(), total=2)
    assert temps(tmp_path) == [] and cache.has("train")


def test_lock_removes_temp_files_of_exited_processes_only(tmp_path: Path) -> None:
    dead = dead_pid()
    (tmp_path / "checkpoints").mkdir()
    stale = [
        tmp_path / f".results.json.{dead}.tmp",
        tmp_path / "checkpoints" / f".best.ckpt.{dead}.tmp",
    ]
    kept = [
        tmp_path / ".notes.tmp",  # not the temp_path_for pattern
        tmp_path / f"results.{dead}.tmp",
        tmp_path / "a" / "b" / f".deep.json.{dead}.tmp",  # deeper than one subfolder
        temp_path_for(tmp_path / "mine.json"),  # this (live) process
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial")
    holder = start(HOLD_TEMP, tmp_path)  # a live process writing into the folder
    live = tmp_path / f".live.json.{holder.pid}.tmp"
    try:
        with lock_folder(tmp_path, "run directory") as lock:
            assert sorted(lock.removed_temps) == sorted(stale)
        assert all(p.exists() for p in [*kept, live]) and not any(p.exists() for p in stale)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert remove_stale_temps(tmp_path) == [live]  # its writer has gone now
