"""The distillation terms on a student you train yourself: `DistillLoss` holds the registry's KD
terms (temporal attention KD, logit KD, hint, attention transfer; or your own), their
training-only parameters (the attention head, the hint projection) and the feature tap on the
student, and turns the student's logits plus the teacher's outputs into one weighted loss.

It is what `TemporalKDCallback` adds to a LightningModule, and it works in a plain PyTorch loop:

    kd = DistillLoss(student, teacher, {"temporal_kd": 1.0}, example_input=features)
    optimizer = torch.optim.AdamW([*student.parameters(), *kd.parameters()])
    loss = F.cross_entropy(student(features), labels) + kd(student(features), waveform)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from distill import students
from distill.config.loader import check_ranges
from distill.core.losses.base import LossInputs
from distill.core.losses.registry import NEEDS, LossContext, available, spec
from distill.errors import BadValueError, UsageError
from distill.students.tap import FeatureTap

if TYPE_CHECKING:  # a type only: importing the teachers is heavy
    from distill.teachers.base import TeacherOutput

DEFAULT_LOSSES = {"temporal_kd": 1.0}


@dataclass(frozen=True)
class _Term:
    """One requested term: its name, weight, what it needs and how to build it."""

    name: str
    weight: float
    needs: frozenset[str]
    build: Callable[[LossContext], nn.Module]
    own: bool = False  # built by the caller: needs no LossContext


def parse_losses(losses: Mapping[str, Any]) -> list[_Term]:
    """The requested KD terms, in the given order. Each value is a weight (`{"logit_kd": 0.5}`),
    the term's settings with a weight (`{"temporal_kd": {"weight": 1, "target": "span"}}`), or
    `(weight, module)` for a term of your own (a module whose forward takes LossInputs; its
    needs are its class attributes `needs_teacher`, `needs_features`, ...). Weight 0 is off."""
    terms = []
    for name, value in losses.items():
        if isinstance(value, tuple):
            terms.append(_own_term(str(name), value))
            continue
        declared = spec(str(name))  # an unknown name lists the registered ones
        if not declared.distills:
            raise BadValueError(
                f"losses.{name}: the task loss is your own; give only distillation terms "
                f"({', '.join(n for n in available() if spec(n).distills)})"
            )
        cfg = _term_config(str(name), declared.config, value)
        if cfg.weight > 0:
            terms.append(
                _Term(str(name), float(cfg.weight), declared.needs(cfg), _builder(declared, cfg))
            )
    return terms


def _builder(declared: Any, cfg: DictConfig) -> Callable[[LossContext], nn.Module]:
    return lambda context: declared.build(cfg, context)


def _term_config(name: str, schema: type, value: Any) -> DictConfig:
    """`value` (a weight or a mapping of the term's settings) checked against its schema."""
    where = f"losses.{name}"
    if isinstance(value, Mapping):
        if "weight" not in value:
            raise BadValueError(f"{where}: give its weight, e.g. {{'weight': 0.5, ...}}")
        given = dict(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        given = {"weight": float(value)}
    else:
        raise BadValueError(
            f"{where}: give a weight or a mapping of the term's settings, got {value!r}"
        )
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), given)
    except OmegaConfBaseException as err:
        valid = ", ".join(OmegaConf.structured(schema).keys())
        first = str(err.msg).splitlines()[0]
        raise BadValueError(f"{where}: {first}; valid keys: {valid}") from None
    check_ranges(cfg, schema, f"{where}.")
    return cfg


def _own_term(name: str, value: tuple) -> _Term:
    if len(value) != 2 or not isinstance(value[1], nn.Module):
        raise BadValueError(f"losses.{name}: a term of your own is (weight, nn.Module instance)")
    weight, module = float(value[0]), value[1]
    needs = frozenset(w for w in NEEDS if getattr(module, f"needs_{w}", False))
    return _Term(name, weight, needs, lambda context: module, own=True)


class DistillLoss(nn.Module):
    """Weighted KD terms on `student` from `teacher`: call it with the student's logits (and the
    waveform the teacher should hear, or the teacher's outputs) to get one scalar loss.

    teacher: a module returning `TeacherOutput` for a (B, N) waveform (e.g. `teachers.create`),
    frozen here (eval mode, run without gradients, never a submodule); None when no term needs
    one or each call gives `teacher_output` (e.g. from a cache).
    losses: see `parse_losses` (default temporal KD at weight 1).
    tap / tap_layout: the student's submodule whose output carries time, and its axes
    (default: the registered student's own).
    channels: the tapped width for the attention head; else it is read from one forward pass
    of `example_input` through `probe` (default the student), without gradients, in eval mode.
    Only this module's parameters are training-only: the student is never changed, and
    `remove()` takes the hooks off it.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None = None,
        losses: Mapping[str, Any] | None = None,
        *,
        tap: str | None = None,
        tap_layout: str | None = None,
        attention_tap: str | None = None,
        task: str = "single_label",
        example_input: Any = None,
        probe: Callable[[Any], Any] | None = None,
        channels: int | None = None,
        clip_seconds: float | None = None,
    ) -> None:
        super().__init__()
        requested = parse_losses(DEFAULT_LOSSES if losses is None else losses)
        if not requested:
            raise BadValueError("DistillLoss needs at least one term with a weight > 0")
        per_step = [t.name for t in requested if "frames" in t.needs]
        if per_step:
            raise BadValueError(
                f"{', '.join(per_step)} train(s) the student's per-step outputs, which DistillLoss "
                "does not compute: use DistillModule, or call the term on LossInputs with "
                "frame_logits= and step_seconds= (distill.core.frames.FrameOutputs gives them)"
            )
        self.weights = {t.name: t.weight for t in requested}
        self.needs_of = {t.name: t.needs for t in requested}
        self.needs = frozenset().union(*self.needs_of.values())
        object.__setattr__(self, "teacher", teacher)  # not a submodule: not trained, not saved
        if isinstance(teacher, nn.Module):
            teacher.eval()
        self.clip_seconds = clip_seconds
        self._tap = self._attention_tap = None
        self._attach(student, tap, tap_layout, attention_tap)
        sized = any("features" in t.needs and not t.own for t in requested)
        if sized and channels is None:
            channels = self._probe(student, probe or student, example_input)
        teacher_dim = getattr(teacher, "hidden_dim", None) if "hidden" in self.needs else None
        context = LossContext(task, channels, teacher_dim)
        self.terms = nn.ModuleDict({t.name: t.build(context) for t in requested})
        self.last_terms: dict[str, Tensor] = {}

    @property
    def needs_teacher(self) -> bool:
        return "teacher" in self.needs

    # -- taps ------------------------------------------------------------------------------------
    def _attach(
        self, student: nn.Module, tap: str | None, layout: str | None, attention: str | None
    ) -> None:
        made = students.created_with(student)
        known = students.spec(made["name"]) if made else None
        if "features" in self.needs:
            tap = tap or (known.default_tap if known else None)
            layout = layout or (known.tap_layout if known else None)
            if tap is None or layout is None:
                raise BadValueError(
                    f"{type(student).__name__} has no default feature tap: give tap= (the "
                    "submodule whose output carries time) and tap_layout= (its axes, e.g. BCT)"
                )
            self._tap = FeatureTap(student, tap, layout)
        if "student_attention" in self.needs:
            attention = attention or (known.attention_tap if known else None)
            if attention is None:
                raise BadValueError(
                    f"a term uses the student's own attention, but {type(student).__name__} "
                    "declares none: give attention_tap= (a submodule emitting (B, H, T'))"
                )
            self._attention_tap = FeatureTap(student, attention, "BCT")

    def _probe(self, student: nn.Module, run: Callable[[Any], Any], example_input: Any) -> int:
        """The tapped feature width C, from one forward pass without gradients in eval mode."""
        if example_input is None:
            raise UsageError(
                "the attention head needs the width of the tapped features: give channels= or "
                "example_input= (one batch of the student's input; TemporalKDCallback also "
                "runs your module's example_input_array)"
            )
        roots = [m for m in (run, student) if isinstance(m, nn.Module)]
        modes = {m: m.training for root in roots for m in root.modules()}
        for root in roots:
            root.eval()
        try:
            with torch.no_grad():
                run(example_input)
            channels = int(self._tap.features().shape[-1])
        finally:
            for module, mode in modes.items():
                module.training = mode  # each module as it was (train() would set all alike)
            self._tap.clear()
        return channels

    def remove(self) -> None:
        """Take the taps off the student (safe to call twice)."""
        for tap in (self._tap, self._attention_tap):
            if tap is not None:
                tap.remove()
        self._tap = self._attention_tap = None

    # -- the loss --------------------------------------------------------------------------------
    def teacher_outputs(self, waveform: Tensor) -> TeacherOutput:
        """The frozen teacher's outputs for a (B, N) waveform batch, on the waveform's device."""
        if self.teacher is None:
            terms = ", ".join(n for n, needs in self.needs_of.items() if "teacher" in needs)
            raise UsageError(
                f"{terms} need(s) the teacher's outputs: give DistillLoss a teacher, or "
                "teacher_output= on each call"
            )
        if isinstance(self.teacher, nn.Module):
            self.teacher.to(waveform.device).eval()
        with torch.no_grad():
            return self.teacher(waveform)

    def forward(
        self,
        logits: Tensor,
        waveform: Tensor | None = None,
        *,
        teacher_output: TeacherOutput | None = None,
        target: Tensor | None = None,
        spans: Tensor | None = None,
    ) -> Tensor:
        """The weighted sum of the terms for the student's latest forward pass (its `logits`):
        the teacher hears `waveform`, or give its `teacher_output` (e.g. from a cache). `target`
        and `spans` (B, S, 2 seconds, NaN-padded) go to terms that read them."""
        if self._tap is None and "features" in self.needs:
            raise UsageError("DistillLoss was removed from its student (remove() was called)")
        if teacher_output is None and self.needs_teacher:
            if waveform is None:
                raise UsageError("give the waveform the teacher should hear, or teacher_output=")
            teacher_output = self.teacher_outputs(waveform)
        inputs = LossInputs(
            logits=logits,
            target=target,
            time_features=self._tap.features() if self._tap is not None else None,
            student_attention=self._attention_tap.output if self._attention_tap else None,
            teacher_logits=teacher_output.logits if teacher_output is not None else None,
            teacher_attention=teacher_output.attention if teacher_output is not None else None,
            teacher_hidden=teacher_output.hidden if teacher_output is not None else None,
            spans=spans,
            clip_seconds=self.clip_seconds,
        )
        values = {name: term(inputs) for name, term in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in values.items())
        if not torch.isfinite(total):
            bad = [n for n, v in values.items() if not torch.isfinite(v)]
            raise FloatingPointError(f"non-finite KD term(s) {', '.join(bad)}: {values}")
        self.last_terms = {name: value.detach() for name, value in values.items()}
        return total


__all__ = ["DEFAULT_LOSSES", "DistillLoss", "parse_losses"]
