"""`distill fit`: train a student (with or without a teacher), pick the best
checkpoint on validation, report its test score, save the bare student."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from distill.core.module import DistillModule
from distill.errors import BadValueError
from distill.files import write_json
from distill.pipeline.artifacts import STUDENT_FILE, save_student
from distill.pipeline.samples import SAMPLES_FILE, dump_attention_samples
from distill.pipeline.session import build_trainer, monitor_of, open_session
from distill.students.profile import count_macs, count_params


def checkpoint_callback(run_dir: Path, monitor: str, every_n_steps: int | None) -> ModelCheckpoint:
    """Best-on-validation checkpoint plus `last.ckpt` (also saved every N steps, for resume)."""
    return ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode="max",
        save_last=True,
        save_top_k=1,
        every_n_train_steps=every_n_steps,
        enable_version_counter=False,
    )


def fit(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_n_steps: int | None = None,
    extra_callbacks: list[pl.Callback] | None = None,
) -> dict[str, Any]:
    """Train the recipe's student, test the best checkpoint, write results.json and student.pt."""
    start = time.time()
    if cfg.trainer.max_epochs < 1:
        raise BadValueError(f"trainer.max_epochs must be >= 1, given {cfg.trainer.max_epochs}")
    if resume and run_dir is None:
        raise BadValueError(
            "--resume needs the run directory to continue (distill fit ... --run-dir)"
        )
    session = open_session(cfg, run_dir, resume=resume)
    run_dir, datamodule, teacher = session.run_dir, session.datamodule, session.teacher
    if cfg.losses.temporal_kd.weight > 0 and cfg.losses.temporal_kd.target == "span":
        require_spans(datamodule.dataset("train"), cfg.data.root)
    teacher_dim = teacher_hidden_dim(teacher) if cfg.losses.hint.weight > 0 else None
    module = DistillModule(
        cfg,
        num_classes=datamodule.num_classes,
        task=datamodule.task,
        class_names=datamodule.class_names,
        clip_seconds=cfg.data.clip_seconds,
        teacher_dim=teacher_dim,
    )
    session.connect(module)
    monitor = monitor_of(cfg, datamodule.task)
    ckpt = checkpoint_callback(run_dir, monitor, checkpoint_every_n_steps)
    trainer = build_trainer(cfg, run_dir, callbacks=[ckpt, *(extra_callbacks or [])])
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    if resume and ckpt_path is None:
        print(f"distill fit: no checkpoint in {last.parent} yet, starting from scratch")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    best = ckpt.best_model_path or str(last)
    test = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    if not trainer.is_global_zero:
        return {"rank": trainer.global_rank, "test": {k: float(v) for k, v in test.items()}}
    best_module = DistillModule.load_from_checkpoint(best, map_location="cpu", weights_only=False)
    if isinstance(module.teacher_source, torch.nn.Module):
        module.teacher_source.cpu()
    best_module.set_teacher_source(module.teacher_source)
    datamodule.stop_serving()  # the samples keep waveforms
    dump_attention_samples(best_module, datamodule, run_dir / SAMPLES_FILE)
    best_module.detach_taps()
    save_student(best_module, run_dir / STUDENT_FILE)
    frames = best_module.frontend.num_frames(
        int(round(cfg.data.clip_seconds * cfg.data.sample_rate))
    )
    results = {
        "recipe": cfg.name,
        "student": cfg.student.target or cfg.student.name,
        "params": count_params(best_module.student),
        "macs": count_macs(best_module.student, (1, best_module.frontend.n_features, frames)),
        "task": datamodule.task,
        "monitor": monitor,
        "best_val": _float(ckpt.best_model_score),
        "test": {k: float(v) for k, v in test.items()},
        "best_checkpoint": best,
        "epochs": trainer.current_epoch,
        "seed": cfg.trainer.seed,
        "wall_seconds": round(time.time() - start, 1),
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "results.json", results)
    return results


def require_spans(dataset: Any, root: str) -> None:
    """Refuse the `span` control on data whose manifest gives no keyword/event spans."""
    if not any(entry.events for entry in dataset.entries):
        raise BadValueError(
            f"losses.temporal_kd.target=span needs ground-truth spans, but the data in {root} has "
            "none (no manifest onsets/offsets, e.g. FSD50K without events_manifest.csv)"
        )


def teacher_hidden_dim(teacher: Any) -> int:
    """Width of the teacher's hidden states (for the hint projection)."""
    dim = getattr(teacher, "hidden_dim", None)
    if dim is None:
        raise BadValueError("losses.hint needs a teacher that reports `hidden_dim`")
    return int(dim)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
