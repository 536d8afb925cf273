"""Optimizer and learning-rate schedule from the recipe's `optim` section."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter], trainer: Any) -> Any:
    """AdamW or SGD with optional linear warm-up then cosine decay, stepped every batch."""
    params = list(params)
    if cfg.name == "sgd":
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = max(1, int(trainer.estimated_stepping_batches)) if trainer is not None else 1
    warmup = 0
    if trainer is not None and cfg.warmup_epochs > 0 and trainer.max_epochs:
        warmup = int(total * cfg.warmup_epochs / trainer.max_epochs)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
