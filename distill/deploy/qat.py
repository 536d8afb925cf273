"""`run_qat`: fake-quant fine-tuning of a distilled student with the same distillation losses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.trainer.states import TrainerFn

from distill.deploy.pt2e import QATStudent, prepare_qat
from distill.errors import BadValueError, UsageError
from distill.files import write_json
from distill.pipeline.artifacts import QAT_DIR, QAT_STUDENT, frames_of

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
            torch.save(
                {"state_dict": self.state, "monitor": self.monitor, "value": self.best}, self.path
            )


def qat_config(cfg: DictConfig) -> DictConfig:
    """The recipe for the QAT stage: qat.epochs epochs at qat.lr, no warm-up."""
    if cfg.qat.epochs < 1:
        raise BadValueError(f"qat.epochs must be >= 1, got {cfg.qat.epochs}")
    return OmegaConf.merge(
        cfg,
        {
            "optim": {"lr": cfg.qat.lr, "warmup_epochs": 0.0},
            "trainer": {"max_epochs": cfg.qat.epochs},
        },
    )


def run_qat(
    checkpoint: str | Path,
    cfg: DictConfig | None = None,
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the checkpoint's student with fake-quant (PT2E, X86 scheme) and the recipe's
    losses, keep the best validation epoch, write `<run_dir>/qat/qat_student.pt` (the float
    weights, loadable with `distill.pipeline.artifacts.load_student`) and `qat_results.json`."""
    from distill.core.module import DistillModule
    from distill.pipeline.artifacts import save_student
    from distill.pipeline.session import build_trainer, monitor_of, open_session

    start = time.time()
    checkpoint = Path(checkpoint)
    module = DistillModule.load_from_checkpoint(
        str(checkpoint), map_location="cpu", weights_only=False
    )
    cfg = qat_config(cfg if cfg is not None else module.cfg)
    module = with_losses(module, cfg)
    out_dir = Path(run_dir) / QAT_DIR if run_dir else checkpoint.parent.parent / QAT_DIR
    session = open_session(cfg, out_dir, new_run_dir=False)
    datamodule = session.datamodule
    has_feature_tap = module._tap is not None
    has_attention_tap = module._attention_tap is not None
    taps = _taps(module)
    module.detach_taps()
    module.cfg = cfg
    example = torch.randn(2, module.frontend.n_features, frames_of(module))
    scope = OmegaConf.select(cfg, "qat.fake_quant", default="deployment")  # older checkpoints
    freeze_bn = bool(OmegaConf.select(cfg, "qat.freeze_bn", default=False))
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
    plain = module_with_student(module, student)
    save_student(plain, out_dir / QAT_STUDENT)
    results = {
        "checkpoint": str(checkpoint),
        "monitor": monitor,
        "best_val": keep.best,
        "best_epoch": keep.best_epoch,
        "val_scores": keep.scores,
        "epochs": cfg.qat.epochs,
        "weight_bits": cfg.qat.weight_bits,
        "fake_quant": scope,
        "freeze_bn": freeze_bn,
        "fake_quant_modules": student.fake_quant_count(),
        "quantized_layers": student.quantized_modules(),
        "qat_student": str(out_dir / QAT_STUDENT),
        "wall_seconds": round(time.time() - start, 1),
    }
    write_json(out_dir / "qat_results.json", results)
    results["qat_module"] = student
    return results


def with_losses(module: Any, cfg: DictConfig) -> Any:
    """`module` itself when `cfg.losses` equals its own; otherwise a module built with the new
    losses, carrying over the student and every aux weight whose name and shape still match
    (e.g. the trained attention head when only a weight changed)."""
    from distill.core.module import DistillModule

    def plain(losses: DictConfig) -> dict:
        return OmegaConf.to_container(losses, resolve=True)

    if plain(cfg.losses) == plain(module.cfg.losses):
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


def module_with_student(module: Any, qat: QATStudent) -> Any:
    """A DistillModule-like view whose `student` is the plain student with the QAT weights."""
    from distill.core.module import build_student

    plain = build_student(module.cfg.student, len(module.class_names), module.frontend.n_features)
    plain.load_state_dict(qat.student_state_dict())

    class _View:
        cfg = module.cfg
        class_names = module.class_names
        frontend = module.frontend
        clip_seconds = module.clip_seconds
        student = plain

        @staticmethod
        def student_state_dict() -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}

    return _View()


__all__ = ["qat_config", "run_qat"]


def fit_with_qat(cfg: DictConfig, **fit_options: Any) -> dict[str, Any]:
    """`distill fit`, then (when the recipe sets qat.enabled) QAT of its best checkpoint, whose
    results join the run's results.json under "qat"."""
    from distill.pipeline.fit import fit

    results = fit(cfg, **fit_options)
    if not cfg.qat.enabled or "rank" in results:  # QAT runs once, on rank 0
        return results
    qat = run_qat(results["best_checkpoint"], cfg, results["run_dir"])
    qat.pop("qat_module", None)
    results["qat"] = qat
    write_json(Path(results["run_dir"]) / "results.json", results)
    return results
