"""Checks that several training tests share: the loss terms a run logged, and that they add up."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest


def check_loss_terms(scores: dict[str, float], weights: dict[str, float], split: str) -> None:
    """The task loss and every term of `weights` (name -> recipe weight) were logged for
    `split`, finite and > 0, and the logged total is task + sum(weight * term): the additive
    weighting, task weight 1."""
    for name in ("task", *weights):
        value = scores[f"{split}/{name}"]
        assert math.isfinite(value) and value > 0, (f"{split}/{name}", value)
    total = scores[f"{split}/task"] + sum(w * scores[f"{split}/{n}"] for n, w in weights.items())
    assert scores[f"{split}/loss"] == pytest.approx(total, rel=1e-5)


def check_logged_training_terms(run_dir: Path, names: list[str]) -> None:
    """The run's metrics.csv holds an epoch mean of the training loss, the task loss and each
    of `names` for every epoch, all finite and > 0."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = {r["epoch"] for r in rows if r.get("train/loss_epoch")}
    assert epochs, f"no train/loss_epoch in {run_dir / 'csv' / 'metrics.csv'}"
    for name in ("loss", "task", *names):
        values = [float(r[f"train/{name}_epoch"]) for r in rows if r.get(f"train/{name}_epoch")]
        assert len(values) == len(epochs), (name, values)
        assert all(math.isfinite(v) and v > 0 for v in values), (name, values)
