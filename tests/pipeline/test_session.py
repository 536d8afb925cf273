"""The run setup: run directory, CSV + offline wandb loggers, seeding, no network."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill.config import RecipeConfig
from distill.pipeline.session import (
    build_trainer,
    make_run_dir,
    resolve_wandb_mode,
    seed_everything,
)


class TinyRegression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves the machine (wandb's local service may use loopback)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def test_tiny_module_logs_to_csv_and_offline_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: wandb is not set up
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "tiny"
    cfg.run_dir = str(tmp_path / "runs")
    cfg.trainer.max_epochs = 2
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_n_steps = 1
    cfg.logger.wandb = True  # off by default (an optional extra); the dev install has it
    seed_everything(0)
    run_dir = make_run_dir(cfg)
    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    trainer = build_trainer(cfg, run_dir)
    trainer.fit(TinyRegression(), data, data)

    assert (run_dir / "config.yaml").read_text().startswith("description:")
    with open(run_dir / "csv" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert any(r.get("train/loss_epoch") for r in rows)
    assert any(r.get("val/loss") for r in rows)
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, list((run_dir).rglob("*"))


def test_wandb_mode_is_offline_unless_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_wandb_mode("auto") == "offline"
    with pytest.raises(RuntimeError, match="wandb is not set up"):
        resolve_wandb_mode("online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"


def test_wandb_can_be_switched_off(tmp_path: Path) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.logger.wandb = False
    cfg.logger.tensorboard = True
    trainer = build_trainer(cfg, tmp_path, enable_progress_bar=False)
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    kinds = [(isinstance(g, CSVLogger), isinstance(g, TensorBoardLogger)) for g in trainer.loggers]
    assert sorted(kinds) == [(False, True), (True, False)]  # one CSV, one TensorBoard, no wandb


def test_seeding_repeats_random_draws() -> None:
    seed_everything(123)
    a = torch.randn(3)
    seed_everything(123)
    assert torch.equal(a, torch.randn(3))


def test_existing_run_dir_is_refused_unless_resuming(tmp_path: Path) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="already holds a run \\(checkpoints\\)"):
        make_run_dir(cfg, run_dir)
    assert make_run_dir(cfg, run_dir, resume=True) == run_dir
