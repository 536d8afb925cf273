"""`run_qat`: fake-quant fine-tuning of a distilled student with the same distillation losses."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.trainer.states import TrainerFn

from distill.deploy.litert_qat import prepare_litert_qat
from distill.deploy.pt2e import prepare_qat
from distill.errors import BadValueError, UsageError
from distill.files import atomic_path
from distill.pipeline.artifacts import QAT_DIR, QAT_STUDENT, frames_of, load_checkpoint_module
from distill.pipeline.results import FitResult, QATResult
from distill.pipeline.session import RunSession

QAT_STATE = "qat_state.pt"


class _KeepBest(pl.Callback):
    """Keeps (in memory and on disk) the QAT graph's state dict of the best validation, the
    validation of the starting weights included (`best_epoch` None: no epoch improved on it).

    The prepared graph does not pickle, so it is checkpointed by state dict (re-prepare the
    student and `load_state_dict` to resume)."""

    def __init__(self, monitor: str, path: Path) -> None:
        self.monitor, self.path = monitor, path
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.scores: list[float] = []  # the starting weights' first, then one per epoch
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"QAT monitor {self.monitor!r} was not logged during validation")
        self.scores.append(float(value))
        if self.best is None or float(value) > self.best:
            self.best = float(value)
            fitting = trainer.state.fn == TrainerFn.FITTING
            self.best_epoch = trainer.current_epoch if fitting else None
            self.state = {
                k: v.detach().cpu().clone() for k, v in module.student.state_dict().items()
            }
            best = {"state_dict": self.state, "monitor": self.monitor, "value": self.best}
            buffer = io.BytesIO()  # written whole: a full disk is an OSError naming the file
            torch.save(best, buffer)
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(buffer.getvalue())


def qat_config(cfg: DictConfig) -> DictConfig:
    """The recipe for the QAT stage: qat.epochs epochs at qat.lr, no warm-up (and no step limit:
    trainer.max_steps bounds `distill fit` only)."""
    if cfg.qat.epochs < 1:
        raise BadValueError(f"qat.epochs must be >= 1, got {cfg.qat.epochs}")
    return OmegaConf.merge(
        cfg,
        {
            "optim": {"lr": cfg.qat.lr, "warmup_epochs": 0.0},
            "trainer": {"max_epochs": cfg.qat.epochs, "max_steps": -1},
        },
    )


def run_qat(
    checkpoint: str | Path,
    cfg: DictConfig | None = None,
    run_dir: str | Path | None = None,
) -> QATResult:
    """Fine-tune the checkpoint's student with fake-quant (`qat.fake_quant`: PT2E with the X86
    scheme, or `litert`: LiteRT's int8 tensors, `distill.deploy.litert_qat`) and the recipe's
    losses, keep the best validation epoch, write `<run_dir>/qat/qat_student.safetensors` (the
    float weights, loadable with `distill.pipeline.artifacts.load_student`) and
    `qat_results.json`."""
    from distill.pipeline.session import open_session

    start = time.time()
    checkpoint = Path(checkpoint)
    module = load_checkpoint_module(checkpoint)
    cfg = qat_config(cfg if cfg is not None else module.cfg)
    module = with_losses(module, cfg)
    out_dir = Path(run_dir) / QAT_DIR if run_dir else checkpoint.parent.parent / QAT_DIR
    with open_session(cfg, out_dir, new_run_dir=False) as session:
        return _qat_in(session, module, checkpoint, start)


def _qat_in(session: RunSession, module: Any, checkpoint: Path, start: float) -> QATResult:
    """`run_qat` inside its run session (which holds the qat folder's lock)."""
    from distill.core.module import build_student
    from distill.pipeline.artifacts import student_info, write_student
    from distill.pipeline.session import build_trainer, monitor_of

    cfg, out_dir, datamodule = session.cfg, session.run_dir, session.datamodule
    has_feature_tap = module._tap is not None
    has_attention_tap = module._attention_tap is not None
    taps = _taps(module)
    module.detach_taps()
    module.cfg = cfg
    example = torch.randn(2, module.frontend.n_features, frames_of(module))
    scope = OmegaConf.select(cfg, "qat.fake_quant", default="deployment")  # older checkpoints
    freeze_bn = bool(OmegaConf.select(cfg, "qat.freeze_bn", default=False))
    if scope == "litert":
        student = prepare_litert_qat(module.student, taps, cfg.qat.weight_bits)
        freeze_bn = True  # the file folds the running statistics
    else:
        student = prepare_qat(module.student, taps, example, cfg.qat.weight_bits, scope, freeze_bn)
    module.student = student
    module._tap = student.taps[0] if has_feature_tap else None
    module._attention_tap = student.taps[-1] if has_attention_tap else None
    session.connect(module)
    monitor = monitor_of(cfg, datamodule.task)
    keep = _KeepBest(monitor, out_dir / QAT_STATE)
    trainer = build_trainer(cfg, out_dir, callbacks=[keep], enable_checkpointing=False)
    trainer.validate(module, datamodule=datamodule, verbose=False)  # the starting weights
    trainer.fit(module, datamodule=datamodule)
    if keep.state is None:
        raise UsageError("QAT ran no validation epoch: set trainer.limit_val_batches > 0")
    student.load_state_dict(keep.state)
    plain_state = student.student_state_dict()
    # the deployable student's keys exactly (strict load into a fresh plain student)
    build_student(cfg.student, len(module.class_names), module.frontend.n_features).load_state_dict(
        plain_state
    )
    write_student(out_dir / QAT_STUDENT, plain_state, student_info(module))
    results = QATResult(
        checkpoint=str(checkpoint),
        monitor=monitor,
        best_val=keep.best,
        best_epoch=keep.best_epoch,
        val_scores=keep.scores,
        epochs=cfg.qat.epochs,
        weight_bits=cfg.qat.weight_bits,
        fake_quant=scope,
        freeze_bn=freeze_bn,
        fake_quant_modules=student.fake_quant_count(),
        quantized_layers=student.quantized_modules(),
        qat_student=str(out_dir / QAT_STUDENT),
        wall_seconds=round(time.time() - start, 1),
        module=student,
    )
    results.write(out_dir / "qat_results.json")
    return results


def with_losses(module: Any, cfg: DictConfig) -> Any:
    """`module` itself when `cfg.losses` switches on the same terms with the same settings as its
    own (the registry's signature); otherwise a module built with the new losses, carrying over
    the student and every aux weight whose name and shape still match (e.g. the trained
    attention head when only a weight changed)."""
    from distill.core.losses.registry import loss_signature
    from distill.core.module import DistillModule

    if loss_signature(cfg.losses) == loss_signature(module.cfg.losses):
        return module
    hp = module.hparams
    rebuilt = DistillModule(
        cfg,
        num_classes=hp["num_classes"],
        task=hp["task"],
        class_names=hp["class_names"],
        clip_seconds=hp["clip_seconds"],
        teacher_dim=hp["teacher_dim"],
    )
    rebuilt.student.load_state_dict(module.student.state_dict())
    new_aux = rebuilt.aux.state_dict()
    kept = {
        k: v for k, v in module.aux.state_dict().items()
        if k in new_aux and new_aux[k].shape == v.shape
    }  # fmt: skip
    rebuilt.aux.load_state_dict(kept, strict=False)
    return rebuilt


def _taps(module: Any) -> list[tuple[str, str]]:
    """(submodule, layout) of every tap the module's losses read, feature tap first."""
    taps = []
    if module._tap is not None:
        taps.append((module._tap.module_name, module._tap.layout))
    if module._attention_tap is not None:
        taps.append((module._attention_tap.module_name, module._attention_tap.layout))
    return taps


def fit_with_qat(cfg: DictConfig, **fit_options: Any) -> FitResult:
    """`distill fit`, then (when the recipe sets qat.enabled) QAT of its best checkpoint, whose
    results join the run's results.json under "qat"."""
    from distill.pipeline.fit import fit

    results = fit(cfg, **fit_options)
    if not cfg.qat.enabled or results.rank is not None:  # QAT runs once, on rank 0
        return results
    results.qat = run_qat(results.best_checkpoint, cfg, results.run_dir).to_dict()
    results.write(Path(results.run_dir) / "results.json")
    return results


__all__ = ["fit_with_qat", "qat_config", "run_qat"]
