"""What the student and teacher LightningModules share: split routing, the headline metric,
and handing the epoch to the datamodule (new training mixtures each epoch)."""

from __future__ import annotations

import pytorch_lightning as pl
from torch import nn

from distill.core.metrics import build_metric, metric_name


class ClassifierModule(pl.LightningModule):
    """Subclasses implement `_eval_step(batch, split)` and call `setup_metrics` in __init__."""

    def setup_metrics(self, task: str, num_classes: int) -> None:
        """Validation and test metric (accuracy or macro mAP) for `task`."""
        self.metrics = nn.ModuleDict({s: build_metric(task, num_classes) for s in ("val", "test")})
        self.metric_name = metric_name(task)

    def _eval_step(self, batch: dict, split: str) -> None:
        raise NotImplementedError

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.log(f"val/{self.metric_name}", self.metrics["val"].compute(), prog_bar=True)
        self.metrics["val"].reset()

    def on_test_epoch_end(self) -> None:
        self.log(f"test/{self.metric_name}", self.metrics["test"].compute())
        self.metrics["test"].reset()

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
