"""Temporal KD for your own LightningModule: `TemporalKDCallback` adds the frozen teacher, the KD
terms and their training-only head for the length of `trainer.fit`, and takes them off again.

Your `training_step` adds the KD loss to its own (explicit, nothing is wrapped):

    loss = F.cross_entropy(logits, labels) + kd_loss(self, waveform, logits)

During fit the terms live in a submodule `distill_kd` of your module, so your
`configure_optimizers(self.parameters())` trains the head, and devices, precision and DDP
treat it like the rest of the model; its weights are kept out of your module's `state_dict`
(checkpoints hold exactly your keys; the head travels in the callback's own checkpoint state,
so resuming works). At the end of fit the submodule and the feature tap's hook are removed:
what you save is your own architecture.

The callback is a `pytorch_lightning.Callback` and, when the `lightning` package is installed,
also a `lightning.pytorch.Callback`, so either Trainer takes it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from torch import Tensor, nn

from distill.core.kd import DistillLoss
from distill.errors import UsageError

if TYPE_CHECKING:  # a type only: importing the teachers is heavy
    from distill.teachers.base import TeacherOutput


def _callback_bases() -> tuple[type, ...]:
    """pytorch_lightning's Callback, plus lightning.pytorch's when that package is installed."""
    bases: list[type] = [pl.Callback]
    if importlib.util.find_spec("lightning") is not None:
        import lightning.pytorch

        bases.append(lightning.pytorch.Callback)
    return tuple(bases)


class TemporalKDCallback(*_callback_bases()):  # type: ignore[misc]
    """Distil `teacher` into the student inside your LightningModule while `trainer.fit` runs.

    teacher: a module returning `TeacherOutput` for a (B, N) waveform (e.g. `teachers.create`),
    frozen and never part of your module. losses: KD terms and weights, as `DistillLoss` takes
    them (default `{"temporal_kd": 1.0}`). student: the attribute path of the student in your
    module ("" = the module itself); tap / tap_layout name its submodule whose output carries
    time (relative to the student; default: a registered student's own). The head's width
    comes from `channels`, or one pass of `example_input` through the student, or of your
    module's `example_input_array` through your module. name: the submodule's name in fit.
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        losses: Mapping[str, Any] | None = None,
        *,
        student: str = "",
        tap: str | None = None,
        tap_layout: str | None = None,
        attention_tap: str | None = None,
        task: str = "single_label",
        example_input: Any = None,
        channels: int | None = None,
        clip_seconds: float | None = None,
        name: str = "distill_kd",
        log: bool = True,
    ) -> None:
        self.teacher = teacher
        self.losses = dict(losses) if losses is not None else None
        self.student = student
        self.options = {
            "tap": tap,
            "tap_layout": tap_layout,
            "attention_tap": attention_tap,
            "task": task,
            "channels": channels,
            "clip_seconds": clip_seconds,
        }
        self.example_input = example_input
        self.name = name
        self.log_terms = log
        self.kd: DistillLoss | None = None
        self._module: nn.Module | None = None
        self._handles: list[Any] = []

    # -- attaching to the user's module ----------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        self._detach()
        if self.name in dict(pl_module.named_children()) or hasattr(pl_module, self.name):
            raise UsageError(
                f"{type(pl_module).__name__} already has an attribute {self.name!r}: give "
                "TemporalKDCallback(name=...) another name"
            )
        student = pl_module.get_submodule(self.student) if self.student else pl_module
        example, probe = self.example_input, student
        if example is None and self.options["channels"] is None:
            example, probe = getattr(pl_module, "example_input_array", None), pl_module
        kd = DistillLoss(
            student, self.teacher, self.losses, example_input=example, probe=probe, **self.options
        )
        self._handles = [
            kd.register_state_dict_post_hook(_leave_out_of_parent_state),
            kd.register_load_state_dict_pre_hook(_keep_when_absent),
        ]
        pl_module.add_module(self.name, kd)
        self.kd, self._module = kd, pl_module

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if isinstance(self.teacher, nn.Module):
            self.teacher.to(pl_module.device).eval()
        groups = [group for optimizer in trainer.optimizers for group in optimizer.param_groups]
        optimized = {id(p) for group in groups for p in group["params"]}
        left_out = [n for n, p in self.kd.named_parameters() if id(p) not in optimized]
        if left_out:
            raise UsageError(
                f"the optimizer of {type(pl_module).__name__}.configure_optimizers does not hold "
                f"the KD head's parameters ({', '.join(left_out)}): build it from "
                "self.parameters(), which include the callback's submodule during fit"
            )

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self._detach()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._detach()

    def _detach(self) -> None:
        """Remove the submodule, its state hooks and the taps from the user's module."""
        if self.kd is None:
            return
        self.kd.remove()
        for handle in self._handles:
            handle.remove()
        if self._module is not None and self._module._modules.get(self.name) is self.kd:
            del self._module._modules[self.name]
        self.kd, self._module, self._handles = None, None, []

    # -- the loss --------------------------------------------------------------------------------
    def distill_loss(
        self,
        waveform: Tensor | None,
        logits: Tensor,
        *,
        teacher_output: TeacherOutput | None = None,
        target: Tensor | None = None,
        spans: Tensor | None = None,
    ) -> Tensor:
        """The weighted KD loss of this step: `logits` from the student's forward pass that just
        ran, `waveform` the (B, N) audio the teacher hears (or its `teacher_output`). Logged as
        `<train|val>/kd_<term>` unless `log=False`."""
        if self.kd is None:
            raise UsageError(
                "TemporalKDCallback.distill_loss works inside trainer.fit only (the callback "
                "attaches its head when fit starts)"
            )
        total = self.kd(logits, waveform, teacher_output=teacher_output, target=target, spans=spans)
        module = self._module
        if self.log_terms and module is not None and getattr(module, "_trainer", None) is not None:
            split = "train" if module.training else "val"
            size = logits.shape[0]
            for term, value in self.kd.last_terms.items():
                module.log(f"{split}/kd_{term}", value, on_epoch=True, batch_size=size)
        return total

    # -- checkpoints: the head's weights travel in the callback's state ---------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"head": self.kd.state_dict()} if self.kd is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "head" in state_dict and self.kd is not None:
            self.kd.load_state_dict(state_dict["head"])


def _leave_out_of_parent_state(
    module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    """State-dict hook: inside a parent's state dict (a prefix) the KD terms leave no keys."""
    if prefix:
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]


def _keep_when_absent(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load hook: a parent's state dict without the KD terms' keys keeps their current values
    (the callback's own state restores them when resuming)."""
    if prefix and not any(k.startswith(prefix) for k in state):
        for key, value in module.state_dict().items():
            state[prefix + key] = value


def kd_loss(
    module: Any,
    waveform: Tensor | None,
    logits: Tensor,
    **extras: Any,
) -> Tensor:
    """`TemporalKDCallback.distill_loss` of the one KD callback on `module`'s Trainer (extras:
    teacher_output, target, spans)."""
    trainer = getattr(module, "_trainer", None)
    found = [c for c in getattr(trainer, "callbacks", []) if isinstance(c, TemporalKDCallback)]
    if len(found) != 1:
        raise UsageError(
            f"kd_loss needs exactly one TemporalKDCallback on the Trainer of "
            f"{type(module).__name__}, found {len(found)}: add it with "
            "Trainer(callbacks=[TemporalKDCallback(teacher, ...)])"
        )
    return found[0].distill_loss(waveform, logits, **extras)


__all__ = ["TemporalKDCallback", "kd_loss"]
