"""Epoch time of plain student training vs distillation with the teacher cache vs the online
teacher, measured side by side in one run on the same data, printed as ratios to plain training.

    python benchmarks/distill_overhead.py [--root BANK] [--clip-seconds 4] [--epochs 3]

Without --root a small synthetic keyword bank is generated in a temporary folder. The teacher
is an in-house transformer with random weights (its accuracy does not matter for timing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from distill.caches.teacher_cache import attach_teacher, build_cache
from distill.config import RecipeConfig
from distill.core.module import DistillModule
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule


class EpochTimer(pl.Callback):
    """Wall time of each training epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def recipe(root: Path, teacher_dir: Path, args: argparse.Namespace):
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = str(root)
    cfg.data.clip_seconds = args.clip_seconds
    cfg.data.train_variants = args.epochs
    cfg.data.batch_size = 64
    cfg.student.name = args.student
    cfg.teacher.kind = "inhouse"
    cfg.teacher.path = str(teacher_dir)
    return cfg


def time_epochs(cfg, mode: str, epochs: int) -> float:
    """Median epoch time (first epoch excluded) for mode plain | cached | online."""
    cfg = cfg.copy()
    if mode != "plain":
        cfg.losses.logit_kd.weight = 0.5
        cfg.losses.temporal_kd.weight = 0.25
    cfg.teacher.cache = mode == "cached"
    datamodule = build_datamodule(cfg.data)
    module = DistillModule(
        cfg, datamodule.num_classes, datamodule.task, datamodule.class_names, cfg.data.clip_seconds
    )
    if mode != "plain":
        attach_teacher(module, cfg, load_teacher_for(cfg), datamodule)
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs + 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    times = sorted(timer.times[1:])
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="existing synth_kws bank")
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per mode")
    parser.add_argument("--student", default="tc_resnet8")
    parser.add_argument("--preset", default="small", help="in-house teacher preset")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = args.root
        if root is None:
            from distill.data.synth.kws import synth_kws

            root = tmp / "bank"
            words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
            synth_kws(
                root,
                words=words,
                unknown_words=["cat", "dog"],
                per_word=40,
                per_unknown=20,
                speakers=40,
                noise_seconds=20,
            )
        from distill import teachers

        cfg = recipe(root, tmp / "teacher", args)
        class_names = build_datamodule(cfg.data).class_names
        teachers.create("inhouse", preset=args.preset, class_names=class_names).save_pretrained(
            tmp / "teacher"
        )
        build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data))
        results = {
            mode: time_epochs(cfg, mode, args.epochs) for mode in ("plain", "cached", "online")
        }
    plain = results["plain"]
    print(
        f"\nstudent {args.student}, teacher preset {args.preset}, {args.clip_seconds:g} s clips, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'mode':<8} {'epoch s':>8} {'x plain':>8}")
    for mode, seconds in results.items():
        print(f"{mode:<8} {seconds:>8.2f} {seconds / plain:>8.2f}")


if __name__ == "__main__":
    main()
