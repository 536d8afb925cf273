"""Exact resume of `distill fit`: what a checkpoint must hold, and when it is written, so that a
run killed at any point and continued with `--resume` ends with the same weights, checkpoints
and logs as the run that was never interrupted.

- `ExactResume` (a callback) saves with every checkpoint what Lightning does not: the random
  number generator states of every rank (torch, CUDA, numpy, python: SpecAugment masks and
  dropout draw from them) and the running sums of the epoch's logged training metrics (the
  `train/*_epoch` means), and puts them back before the first resumed step. The training
  loader's position in the epoch is saved by the datamodule and its loader
  (`distill.data.datamodule.ResumableLoader`).
- `LastCheckpoint` keeps `last.ckpt` current: at the end of every training epoch (after its
  validation) and every N optimizer steps inside an epoch, each made visible only once the
  step it was taken at is fully logged.
- `AtomicCheckpointIO` writes every checkpoint to a temporary file and renames it, so a kill
  while saving leaves the previous checkpoint whole.
- `ResumableCSVLogger` keeps the rows logged before the checkpoint a run resumes from and
  appends to them.
"""

from __future__ import annotations

import csv
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.loggers.logger import rank_zero_experiment
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from distill.files import atomic_path, temp_path_for

# -- random number generators ------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's generator states, as tensors and plain data (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back generator states from `rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            warnings.warn(
                f"resume: the checkpoint holds {len(state['cuda'])} CUDA generator states, this "
                f"machine has {torch.cuda.device_count()} devices: CUDA draws will differ",
                stacklevel=2,
            )
        else:
            torch.cuda.set_rng_state_all(state["cuda"])


def _per_rank(trainer: pl.Trainer, state: dict[str, Any]) -> list[dict[str, Any]]:
    """`state` of every rank, indexed by rank (every rank calls this while saving)."""
    dist = torch.distributed
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        states: list[Any] = [None] * trainer.world_size
        dist.all_gather_object(states, state)
        return states
    return [state]


# -- the epoch's running training metrics ------------------------------------------------------


def _train_results(trainer: pl.Trainer) -> Any:
    """Lightning's collection of the values logged in training steps (`self.log`)."""
    return getattr(trainer.fit_loop.epoch_loop, "_results", None)


def epoch_sums(trainer: pl.Trainer) -> dict[str, dict[str, torch.Tensor]]:
    """The running sums behind the epoch-level training metrics (`on_epoch=True`)."""
    sums: dict[str, dict[str, torch.Tensor]] = {}
    for key, metric in (_train_results(trainer) or {}).items():
        if not (getattr(metric, "is_tensor", False) and metric.meta.on_epoch):
            continue
        states = {"value": metric.value.detach().cpu().clone()}
        if metric.meta.is_mean_reduction:
            states["cumulated_batch_size"] = metric.cumulated_batch_size.detach().cpu().clone()
        sums[key] = states
    return sums


def add_epoch_sums(trainer: pl.Trainer, sums: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """Fold the sums of the batches trained before the checkpoint into this epoch's running
    metrics; returns the keys that could not be folded in."""
    results = _train_results(trainer) or {}
    missing = []
    for key, states in sums.items():
        metric = results.get(key)
        if metric is None or not metric.is_tensor:
            missing.append(key)
            continue
        meta, value = metric.meta, states["value"].to(metric.value.device)
        if meta.is_mean_reduction:
            metric.value = metric.value + value
            size = states["cumulated_batch_size"].to(metric.cumulated_batch_size.device)
            metric.cumulated_batch_size = metric.cumulated_batch_size + size
        elif meta.is_sum_reduction:
            metric.value = metric.value + value
        elif meta.is_max_reduction:
            metric.value = torch.maximum(metric.value, value)
        elif meta.is_min_reduction:
            metric.value = torch.minimum(metric.value, value)
        else:
            missing.append(key)
    return missing


def batches_done(trainer: pl.Trainer) -> int:
    """Training batches of the current epoch already trained on."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


class ExactResume(pl.Callback):
    """Saves the generator states (every rank) and the epoch's running training metrics with
    every checkpoint; after a resume, puts the generator states back just before the first
    resumed training step and, when the run resumes inside an epoch, adds the metrics of the
    batches trained before the checkpoint to that epoch's means."""

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._loaded: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None:
            return {}
        mine = {"rng": rng_state(), "epoch_sums": epoch_sums(trainer)}
        return {
            "ranks": _per_rank(trainer, mine),
            "epoch": trainer.current_epoch,
            "batches": batches_done(trainer),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict) if state_dict.get("ranks") else None

    def _mine(self, trainer: pl.Trainer) -> dict[str, Any]:
        ranks = self._loaded["ranks"] if self._loaded else [{}]
        return ranks[trainer.global_rank] if trainer.global_rank < len(ranks) else ranks[0]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._loaded is not None and "rng" in self._mine(trainer):
            set_rng_state(self._mine(trainer).pop("rng"))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._loaded is None:
            return
        mine, loaded, self._loaded = self._mine(trainer), self._loaded, None
        if (loaded["epoch"], loaded["batches"]) != (trainer.current_epoch, batch_idx):
            return  # resumed at an epoch's start: nothing of this epoch to add
        missing = add_epoch_sums(trainer, mine.get("epoch_sums", {}))
        if missing:
            warnings.warn(
                "resume: the epoch means of " + ", ".join(missing) + " cover only the batches "
                "trained after the resume",
                stacklevel=2,
            )


# -- checkpoints -------------------------------------------------------------------------------


class LastCheckpoint(pl.Callback):
    """Keeps `path` (last.ckpt) current: a checkpoint is taken at the end of every training
    epoch, after its validation, and every `every_n_steps` optimizer steps inside an epoch (not
    on an epoch's last batch: the end-of-epoch checkpoint follows it once validation has run;
    with trainer.accumulate_grad_batches, right after the batch that stepped the optimizer).

    A checkpoint is first written beside `path` and becomes `path` only when the step or epoch
    it was taken at is fully logged (at the start of the next batch or epoch, or when training
    ends), after the loggers were flushed: a run resumed from `path` never misses a log row of
    a step it does not redo.
    """

    def __init__(self, path: str | Path, every_n_steps: int | None = None) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps or 0
        self.pending = temp_path_for(self.path)

    def _take(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.pending, weights_only=False)  # full state: optimizer, loops

    def _promote(self, trainer: pl.Trainer) -> None:
        if not (trainer.is_global_zero and self.pending.is_file()):
            return
        for logger in trainer.loggers:
            logger.save()
        os.replace(self.pending, self.path)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps < 1 or step == 0 or step % self.every_n_steps:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # inside a gradient accumulation: its summed gradients are in no checkpoint
        self._take(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._promote(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._promote(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._promote(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.pending.unlink(missing_ok=True)  # its step may not be fully logged


class AtomicCheckpointIO(TorchCheckpointIO):
    """Torch checkpoints written to a temporary file first, then renamed over the target: a
    kill while saving never leaves a partial `last.ckpt` or `best.ckpt`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


# -- logs ----------------------------------------------------------------------------------------


class AppendingWriter(ExperimentWriter):
    """CSV writer that, when `keep_below_step` is given (a resumed run), keeps the existing rows
    logged before that step instead of deleting them, and rewrites the file atomically."""

    def __init__(self, log_dir: str, keep_below_step: int | None = None) -> None:
        self.keep_below_step = keep_below_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.keep_below_step is None or not path.is_file():
            super()._check_log_dir_exists()
            return
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if _step(r) < self.keep_below_step]
        self._write(header, rows)
        self.metrics_keys = header

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self._write(fieldnames, rows)

    def _write(self, fieldnames: list[str], rows: list[dict[str, Any]]) -> None:
        with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger whose `metrics.csv` survives a resume: the rows logged before the
    step the run resumes from (`keep_below_step`) are kept, the resumed run's rows follow."""

    def __init__(
        self, save_dir: str | os.PathLike, name: str, version: str, keep_below_step: int | None
    ) -> None:
        super().__init__(save_dir=save_dir, name=name, version=version)
        self.keep_below_step = keep_below_step

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(self.log_dir, self.keep_below_step)
        return self._experiment
