"""`distill eval`: score any checkpoint written by `distill fit` on any split; `PredictionCollector`
collects a test pass's logits so that every metric of docs/metrics.md comes from that one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from distill.config import apply_overrides
from distill.core.losses.registry import distillation_off
from distill.core.metric_report import evaluation_report
from distill.core.module import DistillModule
from distill.errors import BadValueError, MissingFileError
from distill.pipeline.artifacts import load_checkpoint_module


class PredictionCollector(pl.Callback):
    """Keeps the student's logits and the labels of every test batch (a forward hook on
    `pl_module.student` while testing); `report()` scores them after `trainer.test`. Under DDP
    every rank tests the whole split (the datamodule shards training only), so each rank's
    collection is already complete and nothing is gathered."""

    def __init__(self) -> None:
        self._handle: RemovableHandle | None = None
        self._last: Tensor | None = None
        self._logits: list[Tensor] = []
        self._labels: list[Tensor] = []

    def _keep(self, _module: Any, _args: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise BadValueError(
                f"the student returned {type(output).__name__}, expected a logits tensor"
            )
        self._last = output.detach()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._logits, self._labels, self._last = [], [], None
        self._handle = pl_module.student.register_forward_hook(self._keep)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        labels = batch["label"]
        if self._last is None or len(self._last) != len(labels):
            raise BadValueError("PredictionCollector: no student logits for this test batch")
        self._logits.append(self._last.float())
        self._labels.append(labels.detach())
        self._last = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def report(self, task: str, class_names: list[str]) -> dict[str, Any]:
        """`evaluation_report` of the last test pass."""
        if not self._logits:
            raise BadValueError("no test predictions to score: no test pass, or an empty split")
        logits, labels = torch.cat(self._logits), torch.cat(self._labels)
        return evaluation_report(logits.cpu(), labels.cpu(), task, class_names)


def report_scalars(report: dict[str, Any], split: str) -> dict[str, float]:
    """The report's defined scalar metrics as `split/name` entries (a results `test` dict)."""
    return {f"{split}/{k}": v for k, v in report["scalars"].items() if v is not None}


def evaluate_checkpoint(
    checkpoint: str | Path, split: str = "test", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Metrics of the checkpoint's student on `split` (teacher-free): the task loss and every
    scalar of docs/metrics.md under "metrics", per-class scores (and the confusion matrix for
    single-label) under "report"."""
    from distill.data import build_datamodule

    path = Path(checkpoint)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    module = load_checkpoint_module(path)
    cfg = module.cfg
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    eval_cfg = OmegaConf.merge(cfg, {"losses": distillation_off(cfg.losses)})
    plain = DistillModule(
        eval_cfg, module.hparams.num_classes, module.task, module.class_names, module.clip_seconds
    )
    plain.student.load_state_dict(module.student.state_dict())
    datamodule = build_datamodule(cfg.data)
    predictions = PredictionCollector()
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        callbacks=[predictions],
        enable_progress_bar=True,
        enable_model_summary=False,
    )
    loader = datamodule.dataloader(split)
    result = trainer.test(plain, dataloaders=loader, verbose=False)[0]
    report = predictions.report(plain.task, plain.class_names)
    metrics = {k.replace("test/", f"{split}/", 1): float(v) for k, v in result.items()}
    return {
        "checkpoint": str(path),
        "split": split,
        "metrics": {**report_scalars(report, split), **metrics},
        "report": report,
    }
