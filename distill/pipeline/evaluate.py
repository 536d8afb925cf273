"""`distill eval`: score any checkpoint written by `distill fit` on any split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from distill.config import apply_overrides
from distill.core.losses.registry import distillation_off
from distill.core.module import DistillModule
from distill.errors import MissingFileError
from distill.pipeline.artifacts import load_checkpoint_module


def evaluate_checkpoint(
    checkpoint: str | Path, split: str = "test", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Metrics of the checkpoint's student on `split` (teacher-free: task metric and loss)."""
    import pytorch_lightning as pl

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
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_progress_bar=True,
        enable_model_summary=False,
    )
    loader = datamodule.dataloader(split)
    split_name = "test"
    result = trainer.test(plain, dataloaders=loader, verbose=False)[0]
    return {
        "checkpoint": str(path),
        "split": split,
        "metrics": {k.replace(f"{split_name}/", f"{split}/"): float(v) for k, v in result.items()},
    }
