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

from distill.core.losses.registry import loss_needs, terms_needing
from distill.core.module import DistillModule
from distill.data.base import SPLITS, skipped_files
from distill.errors import BadValueError
from distill.pipeline.artifacts import (
    STUDENT_FILE,
    init_student_from,
    load_checkpoint_module,
    read_checkpoint,
    save_student,
)
from distill.pipeline.evaluate import PredictionCollector, report_scalars
from distill.pipeline.results import FitResult
from distill.pipeline.resume import ExactResume, LastCheckpoint
from distill.pipeline.samples import SAMPLES_FILE, dump_attention_samples
from distill.pipeline.session import RunSession, build_trainer, monitor_of, open_session
from distill.pipeline.trainer_callbacks import (
    ValidateAtMaxSteps,
    build_callbacks,
    check_callbacks,
    check_resume,
)
from distill.students.profile import count_macs, count_params

LAST_FILE = "last.ckpt"


def checkpoint_callback(run_dir: Path, monitor: str) -> ModelCheckpoint:
    """`best.ckpt`: the best validated state. Written only when a validation ends (never on a
    training step or an epoch without validation), so its weights are the ones whose
    `monitor` value it stores."""
    return ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode="max",
        save_last=False,
        save_top_k=1,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )


def resume_callbacks(run_dir: Path, every_n_steps: int | None) -> list[pl.Callback]:
    """`last.ckpt` (every epoch end and every N steps) and what makes resuming from it exact."""
    return [LastCheckpoint(run_dir / "checkpoints" / LAST_FILE, every_n_steps), ExactResume()]


def fit(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_n_steps: int | None = None,
    extra_callbacks: list[pl.Callback] | None = None,
) -> FitResult:
    """Train the recipe's student, test the best checkpoint, write results.json and the student."""
    start = time.time()
    if cfg.trainer.max_epochs < 1:
        raise BadValueError(f"trainer.max_epochs must be >= 1, given {cfg.trainer.max_epochs}")
    if checkpoint_every_n_steps is not None and checkpoint_every_n_steps < 1:
        raise BadValueError(
            f"--checkpoint-every must be >= 1 (steps), given {checkpoint_every_n_steps}"
        )
    if resume and run_dir is None:
        raise BadValueError(
            "--resume needs the run directory to continue (distill fit ... --run-dir)"
        )
    check_callbacks(cfg, monitor_of(cfg, cfg.data.task))  # trainer.callbacks, before any work
    with open_session(cfg, run_dir, resume=resume) as session:
        return _fit_in(session, resume, checkpoint_every_n_steps, extra_callbacks, start)


def _fit_in(
    session: RunSession,
    resume: bool,
    checkpoint_every_n_steps: int | None,
    extra_callbacks: list[pl.Callback] | None,
    start: float,
) -> FitResult:
    """`fit` inside its run session (which holds the run directory's lock)."""
    cfg, run_dir, datamodule = session.cfg, session.run_dir, session.datamodule
    teacher = session.teacher
    needs = loss_needs(cfg.losses)
    if "spans" in needs:
        require_spans(
            datamodule.dataset("train"), cfg.data.root, terms_needing(cfg.losses, "spans")
        )
    teacher_dim = teacher_hidden_dim(teacher) if "hidden" in needs else None
    module = DistillModule(
        cfg,
        num_classes=datamodule.num_classes,
        task=datamodule.task,
        class_names=datamodule.class_names,
        clip_seconds=cfg.data.clip_seconds,
        teacher_dim=teacher_dim,
    )
    if cfg.student.init_from and not resume:
        source = init_student_from(module, cfg.student.init_from)
        print(f"distill fit: student starts from {source}")
    session.connect(module)
    monitor = monitor_of(cfg, datamodule.task)
    ckpt = checkpoint_callback(run_dir, monitor)
    predictions = PredictionCollector()  # the test pass's logits, for every metric
    # the recipe's callbacks act before last.ckpt is taken (an average updated at a step or an
    # epoch's end is in that step's or epoch's checkpoint)
    recipe = [*build_callbacks(cfg, monitor), ValidateAtMaxSteps()]
    callbacks = [ckpt, *recipe, *resume_callbacks(run_dir, checkpoint_every_n_steps), predictions]
    trainer = _train(session, module, resume, [*callbacks, *(extra_callbacks or [])])
    best = ckpt.best_model_path or str(run_dir / "checkpoints" / LAST_FILE)
    test = trainer.test(
        module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True
    )[0]
    report = predictions.report(datamodule.task, datamodule.class_names)
    test = {**report_scalars(report, "test"), **test}
    if not trainer.is_global_zero:
        return FitResult(rank=trainer.global_rank, test={k: float(v) for k, v in test.items()})
    best_module = _save_best(best, module, datamodule, run_dir)
    frames = best_module.frontend.num_frames(
        int(round(cfg.data.clip_seconds * cfg.data.sample_rate))
    )
    results = FitResult(
        recipe=cfg.name,
        student=cfg.student.target or cfg.student.name,
        params=count_params(best_module.student),
        macs=count_macs(best_module.student, (1, best_module.frontend.n_features, frames)),
        task=datamodule.task,
        monitor=monitor,
        best_val=_float(ckpt.best_model_score),
        test={k: float(v) for k, v in test.items()},
        test_report=report,
        best_checkpoint=best,
        epochs=trainer.current_epoch,
        seed=cfg.trainer.seed,
        wall_seconds=round(time.time() - start, 1),
        run_dir=str(run_dir),
        skipped_files=skipped_files(datamodule.dataset(s) for s in SPLITS),
    )
    results.write(run_dir / "results.json")
    return results


def _save_best(best: str, module: DistillModule, datamodule: Any, run_dir: Path) -> DistillModule:
    """The best checkpoint's module: its attention samples dumped, its bare student saved."""
    best_module = load_checkpoint_module(best)
    if isinstance(module.teacher_source, torch.nn.Module):
        module.teacher_source.cpu()
    best_module.set_teacher_source(module.teacher_source)
    datamodule.stop_serving()  # the samples keep waveforms
    dump_attention_samples(best_module, datamodule, run_dir / SAMPLES_FILE)
    best_module.detach_taps()
    save_student(best_module, run_dir / STUDENT_FILE)
    return best_module


def _train(
    session: RunSession, module: DistillModule, resume: bool, callbacks: list[pl.Callback]
) -> pl.Trainer:
    """Fit `module`; with `resume`, continue from last.ckpt (mid-epoch too), logs appended."""
    last = session.run_dir / "checkpoints" / LAST_FILE
    state = resume_state(last) if resume else None
    resume_step = None if state is None else int(state.get("global_step", 0))
    if state is not None:
        check_resume(state, callbacks)
    trainer = build_trainer(session.cfg, session.run_dir, callbacks, resume_step=resume_step)
    ckpt_path = None if resume_step is None else str(last)
    trainer.fit(module, datamodule=session.datamodule, ckpt_path=ckpt_path, weights_only=True)
    return trainer


def resume_step_of(last: Path) -> int | None:
    """The global step of the checkpoint `--resume` continues from (None: start afresh)."""
    state = resume_state(last)
    return None if state is None else int(state.get("global_step", 0))


def resume_state(last: Path) -> dict[str, Any] | None:
    """The checkpoint `--resume` continues from, read safely (None: start afresh)."""
    if not last.is_file():
        print(f"distill fit: no checkpoint in {last.parent} yet, starting from scratch")
        return None
    return read_checkpoint(last)


def require_spans(dataset: Any, root: str, terms: list[str]) -> None:
    """Refuse loss terms that need ground-truth spans (e.g. the `span` control,
    losses.temporal_kd.target=span) on data whose manifest gives none."""
    from distill.core.spans import missing_spans, span_settings

    reason = missing_spans(dataset, root)
    if reason is not None:
        raise BadValueError(f"{span_settings(terms)} needs ground-truth spans, but {reason}")


def teacher_hidden_dim(teacher: Any) -> int:
    """Width of the teacher's hidden states (for the hint projection)."""
    dim = getattr(teacher, "hidden_dim", None)
    if dim is None:
        raise BadValueError(
            "the recipe's losses need the teacher's hidden states (e.g. losses.hint), but the "
            "teacher reports no `hidden_dim`"
        )
    return int(dim)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
