"""Exact resume (issue 23): a `distill fit` killed mid-epoch with a real SIGKILL and continued
with `--resume` ends bit for bit where the uninterrupted run ends (weights, results, logs);
`best.ckpt` is always a validated state; `last.ckpt` is refreshed at every epoch end;
`csv/metrics.csv` keeps the rows logged before the kill.

The uninterrupted reference runs without `--checkpoint-every` and the killed run with it, so
the comparison also shows that step checkpoints change nothing. SpecAugment masks draw from
torch's global generator, so the comparison also needs the generator states restored.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from distill.config import RecipeConfig, load_recipe
from distill.data import build_datamodule
from distill.data.datamodule import EpochSampler, ResumableLoader
from distill.errors import BadValueError
from distill.pipeline.artifacts import load_checkpoint_module
from distill.pipeline.fit import checkpoint_callback, fit, resume_callbacks
from distill.pipeline.resume import AppendingWriter, rng_state, set_rng_state
from distill.pipeline.session import build_trainer

EPOCHS = 2
EVERY = 2  # --checkpoint-every: the first step checkpoint comes long before the epoch ends
BATCH = 4


def write_recipe(bank: Path, tmp: Path) -> Path:
    recipe = tmp / "resume.yaml"
    spec = {
        "description": "exact resume test",
        "name": "resume",
        "run_dir": str(tmp / "runs"),
        "data": {
            "name": "synth_kws",
            "root": str(bank),
            "clip_seconds": 1.0,
            "batch_size": BATCH,
            "limit_train": 24,  # 6 batches an epoch
            "augment": {"specaugment_freq_mask": 8, "specaugment_time_mask": 10},
        },
        "student": {"name": "tc_resnet8"},
        "trainer": {
            "max_epochs": EPOCHS,
            "progress_bar": False,
            "deterministic": True,
            "log_every_n_steps": 1,
        },
        "logger": {"wandb": False},
    }
    recipe.write_text(yaml.safe_dump(spec))
    return recipe


def kill_mid_epoch(recipe: Path, run_dir: Path) -> None:
    """Start `distill fit --checkpoint-every EVERY`, SIGKILL it once a step checkpoint exists."""
    last = run_dir / "checkpoints" / "last.ckpt"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))  # same float sums
    log = run_dir.parent / "killed.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distill", "fit", str(recipe), "--run-dir", str(run_dir)]
            + ["--checkpoint-every", str(EVERY)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env=env,
        )
        deadline = time.time() + 240
        while not last.is_file() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert last.is_file(), "no step checkpoint before the kill:\n" + log.read_text()[-2000:]
    assert not (run_dir / "results.json").exists(), "the run finished before the kill"


class LastCheckpointProbe(pl.Callback):
    """(global step, global step stored in last.ckpt) at every epoch start after the first and
    when training ends: last.ckpt should then hold the epoch that just ended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[int, int]] = []

    def _look(self, trainer: pl.Trainer) -> None:
        if trainer.global_step > 0:
            stored = torch.load(self.path, map_location="cpu", weights_only=True)["global_step"]
            self.seen.append((trainer.global_step, stored))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._look(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._look(trainer)


@pytest.fixture(scope="module")
def runs(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("resume")
    recipe = write_recipe(tiny_kws_bank, tmp)
    reference_probe = LastCheckpointProbe(tmp / "reference" / "checkpoints" / "last.ckpt")
    reference = fit(
        load_recipe(str(recipe)), run_dir=tmp / "reference", extra_callbacks=[reference_probe]
    )
    run_dir = tmp / "resumed"
    kill_mid_epoch(recipe, run_dir)
    killed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    rows_at_kill = read_rows(run_dir)
    probe = LastCheckpointProbe(run_dir / "checkpoints" / "last.ckpt")
    resumed = fit(
        load_recipe(str(recipe)),
        run_dir=run_dir,
        resume=True,
        checkpoint_every_n_steps=EVERY,
        extra_callbacks=[probe],
    )
    return {
        "recipe": recipe,
        "reference": reference,
        "resumed": resumed,
        "killed_at": killed["global_step"],
        "rows_at_kill": rows_at_kill,
        "probes": {"reference": reference_probe, "resumed": probe},
    }


def read_rows(run_dir: Path | str) -> list[dict[str, str]]:
    """metrics.csv rows, empty cells left out (the column order may differ between files)."""
    with open(Path(run_dir) / "csv" / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def ckpt(run_dir: Path | str, name: str) -> dict[str, Any]:
    return torch.load(Path(run_dir) / "checkpoints" / name, map_location="cpu", weights_only=True)


def test_the_kill_landed_inside_the_first_epoch(runs: dict[str, Any]) -> None:
    steps_per_epoch = ckpt(runs["reference"].run_dir, "last.ckpt")["global_step"] // EPOCHS
    assert 0 < runs["killed_at"] < steps_per_epoch, (runs["killed_at"], steps_per_epoch)


def test_resumed_run_ends_bit_for_bit_like_the_uninterrupted_run(runs: dict[str, Any]) -> None:
    ref, res = runs["reference"], runs["resumed"]
    a = load_file(Path(ref.run_dir) / "student.safetensors")
    b = load_file(Path(res.run_dir) / "student.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "student weights differ"
    last_a, last_b = ckpt(ref.run_dir, "last.ckpt"), ckpt(res.run_dir, "last.ckpt")
    assert last_a["global_step"] == last_b["global_step"]
    assert all(torch.equal(v, last_b["state_dict"][k]) for k, v in last_a["state_dict"].items())
    assert (res.test, res.best_val, res.epochs) == (ref.test, ref.best_val, ref.epochs)


def test_metrics_csv_keeps_the_rows_logged_before_the_kill(runs: dict[str, Any]) -> None:
    before = [r for r in runs["rows_at_kill"] if int(r["step"]) < runs["killed_at"]]
    assert before, "the killed run wrote no rows"
    final = read_rows(runs["resumed"].run_dir)
    assert final[: len(before)] == before
    assert final == read_rows(runs["reference"].run_dir)


@pytest.mark.parametrize("run", ["reference", "resumed"])
def test_best_checkpoint_is_a_validated_state(runs: dict[str, Any], run: str) -> None:
    run_dir = runs[run].run_dir
    best = ckpt(run_dir, "best.ckpt")
    state = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint"))
    score = float(state["best_model_score"])
    assert score == runs[run].best_val
    # the validation row of the best checkpoint's step (logged at global step - 1)
    logged = [
        float(r["val/acc"])
        for r in read_rows(run_dir)
        if "val/acc" in r and int(r["step"]) == best["global_step"] - 1
    ]
    assert logged == [score]
    # and its weights score exactly that on validation
    cfg = load_recipe(str(runs["recipe"]))
    module = load_checkpoint_module(Path(run_dir) / "checkpoints" / "best.ckpt")
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    scores = trainer.validate(module, datamodule=build_datamodule(cfg.data), verbose=False)
    assert scores[0]["val/acc"] == score


@pytest.mark.parametrize("run", ["reference", "resumed"])
def test_last_checkpoint_is_refreshed_every_epoch(runs: dict[str, Any], run: str) -> None:
    seen = runs["probes"][run].seen
    # the reference sees epochs 1.. start and the end; the resumed run (killed in epoch 0)
    # continues epoch 0 without an epoch start, then sees the same
    assert len(seen) == EPOCHS, seen
    assert all(step == stored for step, stored in seen), seen
    final = ckpt(runs[run].run_dir, "last.ckpt")
    assert final["global_step"] == seen[-1][0] and final["epoch"] == EPOCHS - 1


# -- the pieces, without training ------------------------------------------------------------


class ConstantScore(pl.LightningModule):
    """A regression whose validation score never improves after the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/acc", 0.5)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_is_refreshed_when_an_epoch_does_not_improve(tmp_path: Path) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.trainer.max_epochs, cfg.trainer.progress_bar, cfg.logger.wandb = 3, False, False
    probe = LastCheckpointProbe(tmp_path / "checkpoints" / "last.ckpt")
    callbacks = [checkpoint_callback(tmp_path, "val/acc"), *resume_callbacks(tmp_path, None)]
    trainer = build_trainer(cfg, tmp_path, callbacks=[*callbacks, probe])
    x = torch.randn(16, 4)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
    trainer.fit(ConstantScore(), data, data)
    assert probe.seen == [(4, 4), (8, 8), (12, 12)]
    assert ckpt(tmp_path, "best.ckpt")["global_step"] == 4  # the first (only) improvement


class Indices:
    """A dataset of 10 items whose item is its index (takes the sampler's (epoch, index))."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key: tuple[int, int]) -> int:
        return key[1]


def make_loader(batch_size: int = 3, epoch: int = 0) -> ResumableLoader:
    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(epoch)
    return ResumableLoader(Indices(), batch_size=batch_size, sampler=sampler, collate_fn=list)


def test_loader_resumes_at_the_first_batch_not_consumed() -> None:
    batches = list(make_loader(epoch=1))
    partial = make_loader(epoch=1)
    it = iter(partial)
    consumed = [next(it), next(it)]
    state = partial.state_dict()
    assert (state["epoch"], state["batches"]) == (1, 2)
    resumed = make_loader()
    resumed.load_state_dict(state)
    assert len(resumed) == len(batches)  # the epoch keeps its length
    assert consumed + list(resumed) == batches
    assert resumed.state_dict()["batches"] == len(batches)
    assert list(resumed) == batches  # the position applies to one pass only


def test_a_finished_epoch_resumes_at_the_next_one() -> None:
    loader = make_loader()
    loader.load_state_dict({"epoch": 1, "batches": 4, "batch_size": 3, "size": 10})
    assert list(loader) == list(make_loader(epoch=2))


def test_resume_with_another_batch_size_is_refused() -> None:
    loader = make_loader(batch_size=2)
    with pytest.raises(BadValueError, match="batch_size 3 -> 2"):
        loader.load_state_dict({"epoch": 0, "batches": 1, "batch_size": 3, "size": 10})


def test_generator_states_round_trip() -> None:
    state = rng_state()
    drawn = (torch.rand(3), np.random.rand(), random.random())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(drawn[0], again[0]) and drawn[1:] == again[1:]


def test_csv_writer_keeps_earlier_rows_and_appends(tmp_path: Path) -> None:
    first = AppendingWriter(str(tmp_path))
    for step in range(4):
        first.log_metrics({"train/loss": float(step)}, step)
    first.save()
    assert [r["step"] for r in read_csv(tmp_path)] == ["0", "1", "2", "3"]
    resumed = AppendingWriter(str(tmp_path), keep_below_step=2)  # steps 2 and 3 are redone
    resumed.log_metrics({"train/loss": 20.0, "val/acc": 0.5}, 2)
    resumed.save()
    assert [(r["step"], r["train/loss"], r["val/acc"]) for r in read_csv(tmp_path)] == [
        ("0", "0.0", ""),
        ("1", "1.0", ""),
        ("2", "20.0", "0.5"),
    ]


def read_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))
