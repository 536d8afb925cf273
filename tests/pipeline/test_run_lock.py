"""Run-directory and cache-folder locks: a second process is refused naming the first's PID;
the lock goes with its holder (exit, kill -9); a DDP child joins its rank 0's run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import distill.files
from distill.caches.records import RecordCache
from distill.cli import main
from distill.config import RecipeConfig
from distill.core.module import DistillModule
from distill.files import (
    LOCK_FILE,
    FolderLock,
    FolderLockedError,
    lock_folder,
    lock_holder,
)
from distill.pipeline.session import claim_run_dir, make_run_dir, open_session

HOLD_LOCK = """
import sys
from distill.files import lock_folder
lock = lock_folder(sys.argv[1], "run directory")
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""

HOLD_RUN_DIR = """
import sys
from omegaconf import OmegaConf
from distill.config import RecipeConfig
from distill.pipeline.session import claim_run_dir
run_dir, lock = claim_run_dir(OmegaConf.structured(RecipeConfig), sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


class Holder:
    """Another process holding a folder's lock until `release` (or `kill`)."""

    def __init__(self, script: str, folder: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline().strip()
        assert line == "held", self.proc.stderr.read()
        self.pid = self.proc.pid

    def release(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)


@pytest.fixture()
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


def tiny_cfg(tmp: Path) -> DictConfig:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "lock"
    cfg.run_dir = str(tmp / "runs")
    cfg.data.root = str(tmp / "data")  # never read: the lock refuses first
    cfg.student.name = "tc_resnet8"
    cfg.teacher.kind = "none"
    cfg.logger.wandb = False
    return cfg


def test_a_second_process_is_refused_naming_the_first(tmp_path: Path, holders: list) -> None:
    run = tmp_path / "run"
    holders.append(holder := Holder(HOLD_RUN_DIR, run))
    assert lock_holder(run) == holder.pid
    cfg = tiny_cfg(tmp_path)
    for resume in (False, True):
        with pytest.raises(FolderLockedError, match=f"in use by process {holder.pid} on "):
            make_run_dir(cfg, run, resume=resume)
    assert holder.release() == 0
    assert not (run / LOCK_FILE).exists()  # released and removed at the holder's exit
    assert make_run_dir(cfg, run) == run


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path, holders: list) -> None:
    folder = tmp_path / "run"
    holders.append(holder := Holder(HOLD_LOCK, folder))
    holder.kill()
    assert lock_holder(folder) == holder.pid  # the file stays, naming a dead process
    lock = lock_folder(folder, "run directory")
    assert lock.took_over_from == holder.pid and lock_holder(folder) == os.getpid()
    lock.release()
    assert not (folder / LOCK_FILE).exists()


def test_a_waiting_process_gets_the_lock_once_the_holder_lets_go(
    tmp_path: Path, holders: list
) -> None:
    import threading

    folder = tmp_path / "streams"
    holders.append(holder := Holder(HOLD_LOCK, folder))
    with pytest.raises(FolderLockedError, match=f"in use by process {holder.pid}"):
        lock_folder(folder, "stream folder", wait_seconds=0.3, poll_seconds=0.05)
    timer = threading.Timer(0.5, holder.release)  # lets go while we wait
    timer.start()
    lock = lock_folder(folder, "stream folder", wait_seconds=60, poll_seconds=0.05)
    timer.join()
    assert lock.held and lock_holder(folder) == os.getpid()
    lock.release()


@pytest.mark.parametrize("command", ["fit", "teach"])
def test_fit_and_teach_refuse_a_run_dir_in_use(
    tmp_path: Path, holders: list, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    holders.append(holder := Holder(HOLD_LOCK, run))
    recipe = tmp_path / "recipe.yaml"
    cfg = tiny_cfg(tmp_path)
    cfg.teacher.path = str(tmp_path / "teacher")
    recipe.write_text(OmegaConf.to_yaml(cfg))
    assert main([command, str(recipe), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"run directory {run} is in use by process {holder.pid}" in err
    assert len(err.splitlines()) == 1
    assert not (run / "config.yaml").exists()  # nothing written into the other's run


def test_qat_refuses_a_qat_folder_in_use(
    tmp_path: Path, tiny_kws_bank: Path, holders: list, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_cfg(tmp_path)
    cfg.data.root = str(tiny_kws_bank)
    module = DistillModule(cfg, 12, "single_label", [f"c{i}" for i in range(12)], 1.0)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**ckpt, "pytorch-lightning_version": "2.6.0"}, run / "checkpoints" / "best.ckpt")
    holders.append(holder := Holder(HOLD_LOCK, run / "qat"))
    assert main(["qat", str(run)]) == 2
    assert f"{run / 'qat'} is in use by process {holder.pid}" in capsys.readouterr().err


def test_a_session_holds_its_folder_until_closed(tmp_path: Path, tiny_kws_bank: Path) -> None:
    cfg = tiny_cfg(tmp_path)
    cfg.data.root = str(tiny_kws_bank)
    session = open_session(cfg, tmp_path / "run", with_teacher=False)
    assert lock_holder(session.run_dir) == os.getpid()
    probe = subprocess.run(
        [sys.executable, "-c", HOLD_LOCK, str(session.run_dir)],
        capture_output=True, text=True, input="", timeout=120,
    )  # fmt: skip
    assert probe.returncode != 0 and f"in use by process {os.getpid()}" in probe.stderr
    session.close()
    assert not (session.run_dir / LOCK_FILE).exists()


def test_a_ddp_child_joins_without_a_lock(
    tmp_path: Path, holders: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    holders.append(Holder(HOLD_LOCK, run))
    monkeypatch.setenv("LOCAL_RANK", "1")
    run_dir, lock = claim_run_dir(tiny_cfg(tmp_path), run)
    assert run_dir == run and lock is None


def test_a_cache_build_is_refused_while_another_writes_the_folder(
    tmp_path: Path, holders: list
) -> None:
    folder = tmp_path / "cache"
    cache = RecordCache(folder, {"data": "x"})
    rows = [(["a", "b"], {"logits": np.zeros((2, 3), dtype=np.float32)})]
    holders.append(holder := Holder(HOLD_LOCK, folder))
    with pytest.raises(FolderLockedError, match=f"in use by process {holder.pid}"):
        cache.write_rows("train", iter(rows), 2)
    assert not cache.paths("train")[1].exists()
    holder.release()
    cache.write_rows("train", iter(rows), 2)
    assert cache.has("train") and not (folder / LOCK_FILE).exists()


def test_within_one_process_the_lock_is_shared(tmp_path: Path) -> None:
    first = lock_folder(tmp_path, "run directory")
    with lock_folder(tmp_path) as second:
        assert second is first
    assert first.held  # the inner block gave back only its own hold
    first.release()
    assert not first.held and not (tmp_path / LOCK_FILE).exists()
    with FolderLock(tmp_path) as lock:
        assert lock.held and lock_holder(tmp_path) == os.getpid()
    assert not lock.held


def test_without_flock_the_pid_in_the_file_is_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distill.files, "fcntl", None)
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        (tmp_path / LOCK_FILE).write_text(f"{live.pid} {socket.gethostname()}\n")
        with pytest.raises(FolderLockedError, match=f"in use by process {live.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        live.communicate(timeout=60)
    lock = FolderLock(tmp_path).acquire()  # the PID written is dead now: taken over
    assert lock.took_over_from == live.pid and lock_holder(tmp_path) == os.getpid()
    lock.release()
