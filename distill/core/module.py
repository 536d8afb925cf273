"""DistillModule: a student trained with a task loss and KD losses from a frozen teacher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from distill import students
from distill.config.loader import check_recipe
from distill.config.schema import RecipeConfig
from distill.core.classifier_module import ClassifierModule
from distill.core.frames import FrameOutputs
from distill.core.history import StreamHistory
from distill.core.losses import LossInputs, WeightedLosses, entropy
from distill.core.losses.registry import loss_needs, terms_needing
from distill.core.losses.timed import FILLERS
from distill.core.optim import build_optimizer
from distill.core.teacher_source import OnlineTeacher, TeacherSource
from distill.data.augment import build_specaugment
from distill.data.frontend import build_frontend
from distill.errors import BadValueError, UsageError
from distill.students.registry import dotted_name
from distill.students.tap import FeatureTap


def student_tap(cfg: DictConfig) -> tuple[str, str, str | None]:
    """(tap module, tap layout, attention tap): the recipe's, else the student's defaults."""
    spec = students.spec(cfg.target or cfg.name)
    tap = cfg.tap or spec.default_tap
    layout = cfg.tap_layout or spec.tap_layout
    if tap is None or layout is None:
        raise BadValueError(
            f"student {cfg.target or cfg.name!r} declares no feature tap: set student.tap "
            "(a submodule name) and student.tap_layout (e.g. BCFT, BTC) in the recipe"
        )
    return tap, layout, cfg.attention_tap or spec.attention_tap


def build_student(cfg: DictConfig, num_classes: int, n_features: int) -> nn.Module:
    """The plain student named by the recipe's `student` section."""
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True) if cfg.kwargs else {}
    return students.create(
        cfg.target or cfg.name, num_classes=num_classes, n_features=n_features, **kwargs
    )


class DistillModule(ClassifierModule):
    """Student + training-only `aux` losses; teacher outputs come from a frozen teacher run
    online or from a TeacherCache. Only `student` is deployed (see `student_state_dict`)."""

    def __init__(
        self,
        cfg: DictConfig | dict,
        num_classes: int,
        task: str,
        class_names: list[str],
        clip_seconds: float,
        teacher_dim: int | None = None,
        student: nn.Module | None = None,
    ) -> None:
        super().__init__()
        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.save_hyperparameters(
            {
                "cfg": OmegaConf.to_container(cfg, resolve=True),
                "num_classes": num_classes,
                "task": task,
                "class_names": list(class_names),
                "clip_seconds": clip_seconds,
                "teacher_dim": teacher_dim,
            }
        )
        self.cfg = cfg
        self.task = task
        self.class_names = list(class_names)
        self.clip_seconds = clip_seconds
        self.frontend = build_frontend(cfg.frontend)
        self.student = (
            student
            if student is not None
            else build_student(cfg.student, num_classes, self.frontend.n_features)
        )
        specaugment = build_specaugment(cfg.data.augment)
        self.specaugment = specaugment if specaugment.active else None
        needs = loss_needs(cfg.losses)
        needs_features = "features" in needs
        own_attention = "student_attention" in needs
        self._tap = self._attention_tap = None
        if needs_features or own_attention:
            tap_name, layout, attention_name = student_tap(cfg.student)
            if needs_features:
                self._tap = FeatureTap(self.student, tap_name, layout)
            if own_attention:
                if attention_name is None:
                    terms = ", ".join(
                        f"losses.{t}" for t in terms_needing(cfg.losses, "student_attention")
                    )
                    raise BadValueError(
                        f"{terms} uses the student's own attention, but student "
                        f"{cfg.student.target or cfg.student.name!r} has no attention of its own; "
                        "set student.attention_tap or use the default attention head"
                    )
                self._attention_tap = FeatureTap(self.student, attention_name, "BCT")
        channels = self._probe_channels() if self._tap is not None else None
        # per-step outputs (losses.timed): the student's head at every step, as streamed
        self._frames = None
        self._timed_window_seconds: float | None = None  # kept when the taps are detached
        if "frames" in needs:
            window = OmegaConf.select(cfg, "losses.timed.window_seconds", default=0.0)
            self._frames = FrameOutputs(self.student, self.frontend, clip_seconds, window)
            self._timed_window_seconds = self._frames.window_seconds
        self._history = self._stream_history(cfg)
        self.aux = WeightedLosses(
            cfg.losses,
            task,
            channels=channels,
            teacher_dim=teacher_dim,
            class_names=self.class_names,
            frame_window=self._frames.window if self._frames is not None else None,
        )
        self.setup_metrics(task, num_classes)
        self.teacher_source: TeacherSource | None = None  # see set_teacher_source

    def _stream_history(self, cfg: DictConfig) -> StreamHistory | None:
        """`student.history_seconds` of other clips before each training clip, or None."""
        seconds = float(OmegaConf.select(cfg, "student.history_seconds", default=0.0) or 0.0)
        if seconds <= 0:
            return None
        if self._tap is not None or self._attention_tap is not None:
            raise BadValueError(
                f"student.history_seconds={seconds:g} is not supported with losses that read "
                "the student's time features or attention (temporal_kd, hint, "
                "attention_transfer): set their weights to 0, or student.history_seconds=0"
            )
        source = str(OmegaConf.select(cfg, "student.history_from", default="batch"))
        if source == "fillers" and self.task != "single_label":
            raise BadValueError(
                f"student.history_from=fillers needs single-label classes, the task is {self.task}"
            )
        fillers = [i for i, name in enumerate(self.class_names) if name in FILLERS]
        return StreamHistory(self.student, self.frontend, seconds, source, fillers)

    @property
    def history_seconds(self) -> float:
        """Seconds of audio heard before each training clip (`student.history_seconds`)."""
        return self._history.seconds if self._history is not None else 0.0

    @property
    def detection_window_seconds(self) -> float:
        """The window a detector pools over by default: the per-step window it was trained with
        (`losses.timed.window_seconds`), else the clip length."""
        if self._timed_window_seconds is not None:
            return self._timed_window_seconds
        return float(self.clip_seconds)

    @classmethod
    def from_parts(
        cls,
        student: nn.Module,
        *,
        teacher: nn.Module | TeacherSource | None = None,
        losses: Mapping[str, Any] | None = None,
        frontend: Mapping[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        task: str = "single_label",
        clip_seconds: float = 1.0,
        tap: str | None = None,
        tap_layout: str | None = None,
        optim: Mapping[str, Any] | None = None,
    ) -> DistillModule:
        """The module around your parts, no recipe file: `student` (any nn.Module taking the
        frontend's (B, F, T) features), `teacher` (a frozen teacher or a TeacherSource),
        `losses` (term -> weight or settings, e.g. {"logit_kd": 0.5, "temporal_kd": {"weight":
        0.25, "target": "span"}}; the task loss is always on), `frontend` and `optim` (the
        recipe's FrontendConfig / OptimConfig fields). class_names default to the teacher's.
        A student not built by `students.create` is recorded by its class's dotted path: give
        `student=` again to `load_from_checkpoint` when its constructor differs."""
        cfg = parts_config(student, losses, frontend, optim, task, clip_seconds, tap, tap_layout)
        names = list(class_names or getattr(teacher, "class_names", None) or [])
        if not names:
            raise BadValueError("from_parts: give class_names (the teacher has none to copy)")
        made = students.created_with(student) or {}
        given = {"num_classes": len(names), "n_features": build_frontend(cfg.frontend).n_features}
        differ = [f"{k} {made[k]} (needed {v})" for k, v in given.items() if made.get(k, v) != v]
        if differ:
            raise BadValueError(f"from_parts: the student was built with {', '.join(differ)}")
        teacher_dim = None
        if "hidden" in loss_needs(cfg.losses):
            teacher_dim = getattr(teacher, "hidden_dim", None)
            if teacher_dim is None:
                raise BadValueError("from_parts: losses.hint needs a teacher with `hidden_dim`")
        module = cls(cfg, len(names), task, names, clip_seconds, teacher_dim, student=student)
        module.set_teacher_source(teacher)
        return module

    # -- construction helpers ------------------------------------------------------------------
    def _probe_channels(self) -> int:
        samples = int(round(self.clip_seconds * self.cfg.frontend.sample_rate))
        was_training = self.student.training
        self.student.eval()
        with torch.no_grad():
            self.student(self.frontend(torch.zeros(2, samples)))
        self.student.train(was_training)
        channels = self._tap.features().shape[-1]
        self._tap.clear()
        return int(channels)

    def set_teacher_source(self, source: TeacherSource | nn.Module | None) -> None:
        """Attach where teacher outputs come from: a TeacherSource (e.g. a TeacherCache), or a
        frozen teacher, run online through `OnlineTeacher`. It is no part of this module's
        state: checkpoints and `state_dict` never hold teacher weights."""
        if source is not None and not self.aux.needs_teacher:
            source = None
        if source is not None and not isinstance(source, TeacherSource):
            source = OnlineTeacher(source)
        object.__setattr__(self, "teacher_source", source)  # bypass nn.Module: no submodule

    def detach_taps(self) -> None:
        """Remove every hook this module put on the student."""
        for tap in (self._tap, self._attention_tap, self._frames):
            if tap is not None:
                tap.remove()
        self._tap = self._attention_tap = self._frames = None

    def student_state_dict(self) -> dict[str, Tensor]:
        """The deployable student's weights alone (no aux head, frontend or teacher)."""
        return {k: v.detach().cpu().clone() for k, v in self.student.state_dict().items()}

    # -- forward -------------------------------------------------------------------------------
    def features(self, waveform: Tensor) -> Tensor:
        """Student input features (B, F, T) for a waveform batch."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return self.frontend(waveform.float())

    def forward(self, waveform: Tensor) -> Tensor:
        return self.student(self.features(waveform))

    def _teacher_outputs(self, batch: dict, split: str) -> dict[str, Tensor | None]:
        source = self.teacher_source
        if source is None:
            if self.aux.needs_teacher:
                raise UsageError(
                    "the recipe's losses need a teacher but none is attached "
                    "(teacher.kind=none, or no cache/teacher was set up)"
                )
            return {}
        out = source.outputs(batch, split, self.device)
        return {
            "teacher_logits": out.logits,
            "teacher_attention": out.attention,
            "teacher_hidden": out.hidden,
            "teacher_frame_logits": getattr(out, "frame_logits", None),
        }

    def _step(self, batch: dict, split: str) -> tuple[Tensor, LossInputs, dict[str, Tensor]]:
        feats = batch["features"] if "features" in batch else self.features(batch["waveform"])
        if split == "train" and self.specaugment is not None:
            feats = self.specaugment(feats)
        frame_logits = step_seconds = None
        history = None
        if split == "train" and self._history is not None:
            history = self._history.for_batch(batch["label"])
        if self._frames is not None:
            logits, frame_logits, step_seconds = self._frames(self.student, feats, history)
        elif "frames" in self.aux.needs:
            raise UsageError(
                "losses.timed needs the student's per-step outputs, whose hook was taken off "
                "(detach_taps, e.g. for QAT, which does not support per-step terms: run QAT "
                "with losses.timed.weight=0)"
            )
        elif history is not None:
            logits = history.clip_logits(self.student, feats)
        else:
            logits = self.student(feats)
        inputs = LossInputs(
            logits=logits,
            frame_logits=frame_logits,
            step_seconds=step_seconds,
            target=batch.get("target", batch["label"]),
            time_features=self._tap.features() if self._tap is not None else None,
            student_attention=self._attention_tap.output if self._attention_tap else None,
            spans=batch.get("spans"),
            clip_seconds=self.clip_seconds,
            **self._teacher_outputs(batch, split),
        )
        total, terms = self.aux(inputs)
        return total, inputs, terms

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        total, _, terms = self._step(batch, "train")
        size = len(batch["clip_id"])
        self.log("train/loss", total, prog_bar=True, on_epoch=True, batch_size=size)
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=size)
        return total

    def _eval_step(self, batch: dict, split: str) -> None:
        total, inputs, terms = self._step(batch, split)
        size = len(batch["clip_id"])
        self.metrics[split].update(inputs.logits, batch["label"])
        self.log(f"{split}/loss", total, batch_size=size, sync_dist=True)
        for name, value in terms.items():
            self.log(f"{split}/{name}", value, batch_size=size, sync_dist=True)
        if "temporal_kd" in self.aux.terms:
            self._log_localisation(inputs, split, size)

    def _log_localisation(self, inputs: LossInputs, split: str, size: int) -> None:
        """Entropy of the student's attention a_S and of its target, and the fraction of clips
        whose argmax falls inside the true span (where the data has spans)."""
        kd = self.aux.terms["temporal_kd"]
        a_s = kd.student_distribution(inputs)
        dists = {"student_attention": a_s}
        if kd.target_kind != "span" or inputs.spans is not None:
            dists["target_attention"] = kd.target(inputs, a_s.shape[1])
        for name, dist in dists.items():
            self.log(
                f"{split}/{name}_entropy", entropy(dist).mean(), batch_size=size, sync_dist=True
            )
            if inputs.spans is None:
                continue
            inside = argmax_inside_span(dist, inputs.spans, self.clip_seconds)
            if inside is not None:
                self.log(f"{split}/{name}_in_span", inside, batch_size=size, sync_dist=True)

    def on_fit_start(self) -> None:
        if self.teacher_source is not None and isinstance(self.teacher_source, nn.Module):
            self.teacher_source.to(self.device).eval()

    on_test_start = on_validation_start = on_fit_start

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        return build_optimizer(self.cfg.optim, params, self.trainer)


def parts_config(
    student: nn.Module,
    losses: Mapping[str, Any] | None,
    frontend: Mapping[str, Any] | None,
    optim: Mapping[str, Any] | None,
    task: str,
    clip_seconds: float,
    tap: str | None,
    tap_layout: str | None,
) -> DictConfig:
    """A recipe (the schema's defaults) describing `from_parts`' arguments, checked."""
    made = students.created_with(student)
    name = made["name"] if made else dotted_name(type(student))
    registered = name in students.available()
    update = {
        "data": {"task": task, "clip_seconds": clip_seconds},
        "student": {
            "name": name if registered else "custom",
            "target": None if registered else name,
            "kwargs": made["kwargs"] if made else {},
            "tap": tap,
            "tap_layout": tap_layout,
        },
        "losses": {
            k: v if isinstance(v, Mapping) or k == "weighting" else {"weight": float(v)}
            for k, v in (losses or {}).items()
        },
        "frontend": dict(frontend or {}),
        "optim": dict(optim or {}),
    }
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RecipeConfig), update)
    except OmegaConfBaseException as err:
        first = str(err.msg).splitlines()[0]
        raise BadValueError(f"from_parts: {first} (key {err.full_key})") from None
    check_recipe(cfg)
    return cfg


def argmax_inside_span(a: Tensor, spans: Tensor, clip_seconds: float) -> Tensor | None:
    """Fraction of clips whose attention argmax (bin centre, seconds) falls inside a true span;
    None when no clip in the batch has a span."""
    steps = a.shape[-1]
    centre = (a.argmax(dim=-1).float() + 0.5) * clip_seconds / steps
    onset, offset = spans[..., 0], spans[..., 1]
    has_span = ~torch.isnan(onset).all(dim=-1)
    if not bool(has_span.any()):
        return None
    inside = ((centre[:, None] >= onset) & (centre[:, None] <= offset)).any(dim=-1)
    return inside[has_span].float().mean()


__all__ = ["DistillModule", "argmax_inside_span", "build_student", "parts_config", "student_tap"]
