"""Training the pending runs of a grid, one after another or several side by side
(`distill compare --jobs N`: N processes, the CPU threads split between them)."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from distill.errors import BadValueError, UsageError

# Validation metrics an epoch line shows, when the run logs them.
EPOCH_LINE_KEYS = ("val/acc", "val/mAP", "val/loss")


@dataclass(frozen=True)
class GridRun:
    """One pending run: its label for the log, its recipe and its folder."""

    label: str
    cfg: DictConfig
    run_dir: Path


class EpochLine(pl.Callback):
    """One printed line per finished epoch (runs side by side share a terminal, so no bars)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.time()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the epoch's validation (a callback's on_validation_epoch_end runs before the
        # module's, so the metrics it sees are the previous epoch's)
        metrics = trainer.callback_metrics
        shown = [f"{k} {float(metrics[k]):.4f}" for k in EPOCH_LINE_KEYS if k in metrics]
        print(
            f"compare: {self.label}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            f" {', '.join(shown)} ({time.time() - self.started:.0f} s)",
            flush=True,
        )


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """CPU threads each of `jobs` side-by-side runs gets (at least 1)."""
    return max(1, (threads or torch.get_num_threads()) // jobs)


def train_runs(runs: list[GridRun], jobs: int = 1) -> None:
    """Train every run (results.json in its folder); with jobs > 1, `jobs` at a time.

    Side by side, a failed run does not stop the others; the failures are raised together at
    the end (their folders stay unfinished, so the next call redoes them)."""
    from distill.deploy.qat import fit_with_qat

    if jobs < 1:
        raise BadValueError(f"--jobs must be at least 1, given {jobs}")
    if jobs == 1 or len(runs) <= 1:
        for run in runs:
            print(f"compare: {run.label}: training", flush=True)
            fit_with_qat(run.cfg, run_dir=run.run_dir)
        return
    jobs = min(jobs, len(runs))
    threads = threads_per_job(jobs)
    print(
        f"compare: training {len(runs)} runs, {jobs} at a time, {threads} CPU thread(s) each",
        flush=True,
    )
    failed: list[tuple[GridRun, BaseException]] = []
    context = multiprocessing.get_context("spawn")  # a forked Lightning/torch process is unsafe
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(threads,)) as pool:  # fmt: skip
        futures = {pool.submit(_fit_in_worker, run): run for run in runs}
        for future in as_completed(futures):
            run = futures[future]
            try:
                results = future.result()
            except Exception as err:  # reported with the others below
                failed.append((run, err))
                print(f"compare: {run.label}: FAILED ({type(err).__name__}: {err})", flush=True)
                continue
            print(f"compare: {run.label}: done in {results.wall_seconds:.0f} s", flush=True)
    if failed:
        names = "; ".join(f"{run.label} ({run.run_dir})" for run, _ in failed)
        raise UsageError(
            f"compare: {len(failed)} of {len(runs)} run(s) failed: {names}. The others are "
            "finished; the next call redoes the failed ones"
        ) from failed[0][1]


def _start_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _fit_in_worker(run: GridRun) -> dict[str, Any]:
    from distill.config import apply_overrides
    from distill.deploy.qat import fit_with_qat

    print(f"compare: {run.label}: training (process {os.getpid()})", flush=True)
    cfg = apply_overrides(run.cfg, ["trainer.progress_bar=false"])
    return fit_with_qat(cfg, run_dir=run.run_dir, extra_callbacks=[EpochLine(run.label)])
