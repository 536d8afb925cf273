"""`distill teach`: train (or fine-tune) the recipe's teacher and save it to `teacher.path`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor, nn

from distill.core.classifier_module import ClassifierModule
from distill.core.losses import TaskLoss, entropy
from distill.core.losses.base import LossInputs
from distill.core.metrics import metric_name
from distill.core.module import argmax_inside_span
from distill.core.optim import build_optimizer
from distill.data.augment import build_specaugment
from distill.errors import BadValueError, UsageError
from distill.pipeline.artifacts import read_checkpoint
from distill.pipeline.results import TeachResult
from distill.pipeline.session import RunSession, build_trainer, open_session
from distill.students.profile import count_macs


class TeacherModule(ClassifierModule):
    """Supervised training of a teacher through its logits-only path (`classify`)."""

    def __init__(self, teacher: Any, cfg: DictConfig, task: str, clip_seconds: float) -> None:
        super().__init__()
        self.teacher = teacher
        self.cfg = cfg
        self.task = task
        self.clip_seconds = clip_seconds
        self.loss = TaskLoss(task, cfg.losses.task.label_smoothing)
        self.setup_metrics(task, teacher.num_classes)
        self.specaugment = build_specaugment(cfg.data.augment)
        frontend = getattr(teacher, "frontend", None)
        self._hook = None
        if self.specaugment.active and frontend is not None:
            self._hook = frontend.register_forward_hook(self._augment_features)

    def remove_hooks(self) -> None:
        """Detach the SpecAugment hook from the teacher's frontend."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _augment_features(self, module: Any, inputs: Any, output: Tensor) -> Tensor | None:
        return self.specaugment(output) if self.training else None

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        logits = self.teacher.classify(batch["waveform"])
        loss = self.loss(LossInputs(logits=logits, target=batch.get("target", batch["label"])))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, batch: dict, split: str) -> None:
        out = self.teacher(batch["waveform"])
        size = len(out.logits)
        self.metrics[split].update(out.logits, batch["label"])
        loss = self.loss(LossInputs(logits=out.logits, target=batch["label"]))
        self.log(f"{split}/loss", loss, batch_size=size, sync_dist=True)
        self.log(
            f"{split}/teacher_attention_entropy", entropy(out.attention).mean(), batch_size=size
        )
        if batch.get("spans") is not None:
            inside = argmax_inside_span(out.attention, batch["spans"], self.clip_seconds)
            if inside is not None:
                self.log(f"{split}/teacher_attention_in_span", inside, batch_size=size)

    def configure_optimizers(self) -> Any:
        return build_optimizer(self.cfg.optim, self.teacher.parameters(), self.trainer)


def new_teacher(cfg: DictConfig, class_names: list[str]) -> Any:
    """The teacher to train: fresh from `teacher.kwargs`, or initialised from
    `teacher.kwargs.init_from` (a saved teacher of this project, e.g. one pretrained on clean 1 s
    keywords, or for a Hugging Face-format kind a local model directory / cached hub id)."""
    from distill import teachers

    spec = teachers.spec(cfg.teacher.kind)
    options = OmegaConf.to_container(cfg.teacher.kwargs, resolve=True) if cfg.teacher.kwargs else {}
    source = options.pop("init_from", None)
    if source is not None:
        return spec.cls.start_from(source, list(class_names), **options)
    if not spec.from_scratch:
        raise BadValueError(
            f"teacher.kind={cfg.teacher.kind} cannot be trained from scratch: give "
            f"teacher.kwargs.init_from ({spec.where}) to fine-tune; teacher.path is where the "
            "result is saved"
        )
    if spec.recipe_frontend:
        options.setdefault("frontend", OmegaConf.to_container(cfg.frontend, resolve=True))
    return spec.cls.build(list(class_names), **options)


class _ClassifyPath(nn.Module):
    def __init__(self, teacher: Any) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, waveform: Tensor) -> Tensor:
        return self.teacher.classify(waveform)


def teacher_macs(teacher: Any, samples: int) -> int:
    """MACs of classifying one clip: from features for a spectrogram teacher (as the students'
    MACs and `distill bench` count them), from the waveform otherwise."""
    import copy

    from distill.teachers.export import TeacherClassifier

    if not hasattr(getattr(teacher, "frontend", None), "n_features"):
        return count_macs(_ClassifyPath(teacher), (1, samples))
    wrapper = TeacherClassifier(copy.deepcopy(teacher)).eval()
    with torch.no_grad():
        shape = wrapper.teacher_frontend(torch.zeros(1, samples)).shape
    return count_macs(wrapper, tuple(shape))


def teacher_latency(teacher: Any, samples: int, runs: int = 30) -> float | None:
    """Median batch-1 latency (ms, onnxruntime, 1 thread) of the teacher's classify path on
    features, like the students'; None for a teacher without a spectrogram frontend."""
    import copy
    import tempfile

    from distill.cost import onnx_latency
    from distill.teachers.export import export_teacher

    if getattr(teacher, "frontend", None) is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path, shape, _ = export_teacher(copy.deepcopy(teacher), Path(tmp) / "t.onnx", samples)
        return onnx_latency(path, shape, batch=1, runs=runs)


def teach(
    cfg: DictConfig, run_dir: str | Path | None = None, overwrite: bool = False
) -> TeachResult:
    """Train the teacher, keep the best validation checkpoint, test it, save it to teacher.path.

    A teacher.path that already holds files is refused before any work (UsageError naming it)
    unless `overwrite` (`distill teach --overwrite`)."""
    if not cfg.teacher.path:
        raise BadValueError(
            "distill teach needs teacher.path: the directory to save the teacher to"
        )
    check_teacher_path(Path(cfg.teacher.path), overwrite)
    start = time.time()
    with open_session(cfg, run_dir, with_teacher=False) as session:
        return _teach_in(session, start)


def check_teacher_path(path: Path, overwrite: bool) -> None:
    """Refuse a teacher.path that is a file, or a folder holding files unless `overwrite`."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"teacher.path {path} is a file: give a folder to save the teacher to")
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        raise UsageError(
            f"teacher.path {path} already holds files ({shown}): distill teach would overwrite "
            "that teacher; pass --overwrite to replace it, or set teacher.path to a new folder"
        )


def _teach_in(session: RunSession, start: float) -> TeachResult:
    """`teach` inside its run session (which holds the run directory's lock)."""
    cfg, run_dir, datamodule = session.cfg, session.run_dir, session.datamodule
    teacher = new_teacher(cfg, datamodule.class_names)
    module = TeacherModule(teacher, cfg, datamodule.task, cfg.data.clip_seconds)
    monitor = f"val/{metric_name(datamodule.task)}"
    ckpt = ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    trainer = build_trainer(cfg, run_dir, callbacks=[ckpt])
    trainer.fit(module, datamodule=datamodule)
    best = ckpt.best_model_path
    if best:
        state = read_checkpoint(best)["state_dict"]
        module.load_state_dict(state)
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    module.remove_hooks()
    teacher.freeze()
    teacher.save_pretrained(cfg.teacher.path)
    n_params = sum(p.numel() for p in teacher.parameters())
    samples = int(round(cfg.data.clip_seconds * cfg.data.sample_rate))
    results = TeachResult(
        recipe=cfg.name,
        teacher_path=str(cfg.teacher.path),
        params=n_params,
        macs=teacher_macs(teacher, samples),
        clip_seconds=cfg.data.clip_seconds,
        best_val=None if ckpt.best_model_score is None else float(ckpt.best_model_score),
        test={k: float(v) for k, v in test.items()},
        epochs=trainer.current_epoch,
        wall_seconds=round(time.time() - start, 1),
        run_dir=str(run_dir),
        latency_ms_b1=teacher_latency(teacher, samples),
    )
    results.write(run_dir / "results.json", Path(cfg.teacher.path) / "results.json")
    return results
