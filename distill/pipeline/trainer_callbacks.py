"""The callbacks a recipe adds to `distill fit` (`trainer.callbacks`): built-in ones by short
name, any other by dotted path, each entry checked (name, class, arguments) before any work.

An entry is a built-in name (`early_stopping`), a mapping `{name: early_stopping, init_args:
{patience: 3}}`, or `{class_path: my_pkg.MyCallback, init_args: {...}}`. A class path is
imported from the recipe the user gives `distill fit` (also on `--resume`), never from a saved
run: checkpoints and config.yaml record the entries, and reading them back (eval, qat, export)
builds no callback.

Weight averaging (`ema`, `swa`) keeps an averaged copy of the module: validation runs with the
averaged weights, every checkpoint's `state_dict` holds them (the raw weights go to
`current_model_state`, which `--resume` trains on from), so `best.ckpt`, its test scores and the
saved student are the averaged model.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

from distill.dotted import DottedMessages, first_line, import_class
from distill.errors import BadValueError, UsageError

ENTRY_KEYS = ("name", "class_path", "init_args")
EXAMPLE = "e.g. 'my_pkg.callbacks.MyCallback'"

# -- weight averaging ----------------------------------------------------------------------------


def ema_update(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """avg <- decay * avg + (1 - decay) * current for floating tensors; others take the current
    value (e.g. BatchNorm's batch counter)."""

    def update(avg: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor) -> torch.Tensor:
        return avg.lerp(current, 1.0 - decay) if avg.is_floating_point() else current

    return update


def mean_update(avg: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor) -> torch.Tensor:
    """The running equal average of every snapshot so far (floating tensors; others: current)."""
    if not avg.is_floating_point():
        return current
    return avg + (current - avg) / (n_averaged.to(avg.dtype) + 1)


@contextlib.contextmanager
def _without_references(module: pl.LightningModule) -> Iterator[None]:
    """`module` without its trainer and teacher for as long as it is deep-copied: the averaged
    copy holds the module's own weights only."""
    trainer, source = module._trainer, getattr(module, "teacher_source", None)
    module._trainer = None
    if source is not None:
        object.__setattr__(module, "teacher_source", None)
    try:
        yield
    finally:
        module._trainer = trainer
        if source is not None:
            object.__setattr__(module, "teacher_source", source)


class Averaging(WeightAveraging):
    """Lightning's WeightAveraging whose average takes part only once it holds weights: before
    its first update, validation, checkpoints and the end of training use the raw weights. Its
    state (and the raw weights) are restored from a checkpoint only when training resumes; a
    checkpoint tested or evaluated is its `state_dict`, the averaged weights."""

    def __init__(self, avg_fn: Callable[..., torch.Tensor]) -> None:
        super().__init__(use_buffers=True, avg_fn=avg_fn)
        self._swapped = False

    @property
    def has_average(self) -> bool:
        """Whether the average holds at least one snapshot of the weights."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with _without_references(pl_module):
            super().setup(trainer, pl_module, stage)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swapped = self.has_average
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
        self._swapped = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.has_average:
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.has_average:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING or "current_model_state" not in checkpoint:
            return  # testing evaluates the averaged weights; no average saved yet: none to restore
        super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)


class EMA(Averaging):
    """Exponential moving average of the weights (buffers included): after every
    `every_n_steps`-th optimizer step from step `start_step` on (0-based),
    avg <- decay * avg + (1 - decay) * weights; the first update copies the weights."""

    def __init__(self, decay: float = 0.999, start_step: int = 0, every_n_steps: int = 1) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), given {decay!r}")
        if start_step < 0 or every_n_steps < 1:
            raise ValueError(
                f"start_step must be >= 0 and every_n_steps >= 1, given {start_step!r} and "
                f"{every_n_steps!r}"
            )
        super().__init__(ema_update(decay))
        self.decay, self.start_step, self.every_n_steps = decay, start_step, every_n_steps

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None or step_idx < self.start_step:
            return False
        return (step_idx - self.start_step) % self.every_n_steps == 0


class SWA(Averaging):
    """Stochastic weight averaging: the equal average of the weights at the end of every epoch
    from `start_epoch` on (an epoch index, or a fraction in (0, 1) of trainer.max_epochs, as
    Lightning's StochasticWeightAveraging), taken after the epoch's last batch so that the
    epoch's validation already sees it. No learning-rate schedule of its own."""

    def __init__(self, start_epoch: int | float = 0.8) -> None:
        if isinstance(start_epoch, bool) or not (
            (isinstance(start_epoch, int) and start_epoch >= 0)
            or (isinstance(start_epoch, float) and 0.0 < start_epoch < 1.0)
        ):
            raise ValueError(
                "start_epoch must be an epoch index >= 0 or a fraction in (0, 1) of max_epochs, "
                f"given {start_epoch!r}"
            )
        super().__init__(mean_update)
        self.start_epoch = start_epoch
        self._first_epoch = start_epoch if isinstance(start_epoch, int) else 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(self.start_epoch, float):
            self._first_epoch = int(self.start_epoch * (trainer.max_epochs or 0))
        super().setup(trainer, pl_module, stage)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return False  # updated at each epoch's last batch, below

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        epoch = trainer.current_epoch
        if batch_idx + 1 < trainer.num_training_batches or epoch < self._first_epoch:
            return
        if epoch > self._latest_update_epoch and self._average_model is not None:
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch


class ValidateAtMaxSteps(pl.Callback):
    """Validation at the step trainer.max_steps stops training inside an epoch (Lightning
    validates only at the epoch's end, which such a run never reaches), so that the last
    weights compete for best.ckpt like every validated state."""

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        limit = trainer.max_steps
        if limit is None or limit < 0 or trainer.global_step < limit:
            return
        if batch_idx + 1 < trainer.num_training_batches:
            trainer.should_stop = True  # Lightning then validates after this batch


# -- the recipe's entries -----------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltIn:
    """A callback known by a short name; `defaults(monitor)`: init_args the entry may override."""

    cls: type[pl.Callback]
    defaults: Callable[[str], dict[str, Any]] = field(default=lambda monitor: {})


BUILT_IN: dict[str, BuiltIn] = {
    "early_stopping": BuiltIn(EarlyStopping, lambda monitor: {"monitor": monitor, "mode": "max"}),
    "lr_monitor": BuiltIn(LearningRateMonitor),
    "ema": BuiltIn(EMA),
    "weight_averaging": BuiltIn(EMA),  # the name of Lightning's callback; EMA is its use here
    "swa": BuiltIn(SWA),
}


@dataclass(frozen=True)
class Entry:
    """One checked entry of `trainer.callbacks`: where it is, what it names, its class."""

    where: str
    label: str
    cls: type[pl.Callback]
    init_args: dict[str, Any]
    defaults: Callable[[str], dict[str, Any]]

    def build(self, monitor: str) -> pl.Callback:
        """The callback, built with the entry's init_args over the built-in's defaults."""
        args = {**self.defaults(monitor), **self.init_args}
        try:
            return self.cls(**args)
        except Exception as err:  # the class's own check of a value, as one line
            raise BadValueError(f"{self.where} ({self.label}): {first_line(err)}") from err


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def entries(cfg: DictConfig) -> list[Entry]:
    """The recipe's `trainer.callbacks`, each checked: its form, its name or importable
    Callback class, and that the class takes its init_args."""
    raw = _plain(OmegaConf.select(cfg, "trainer.callbacks", default=None)) or []
    if not isinstance(raw, list):
        raise BadValueError(f"trainer.callbacks must be a list of entries, given {raw!r}")
    return [_entry(f"trainer.callbacks[{i}]", item) for i, item in enumerate(raw)]


def _entry(where: str, item: Any) -> Entry:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise BadValueError(
            f"{where}: an entry is a built-in name or a mapping with name or class_path (and "
            f"init_args), given {item!r}"
        )
    unknown = [k for k in item if k not in ENTRY_KEYS]
    if unknown:
        raise BadValueError(
            f"{where}: unknown key {unknown[0]!r} (an entry takes {', '.join(ENTRY_KEYS)})"
        )
    name, path = item.get("name"), item.get("class_path")
    if (name is None) == (path is None):
        raise BadValueError(f"{where}: give either name (a built-in) or class_path ({EXAMPLE})")
    init_args = item.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise BadValueError(f"{where}.init_args must be a mapping, given {init_args!r}")
    if name is not None:
        if not isinstance(name, str) or name not in BUILT_IN:
            raise BadValueError(
                f"{where}: unknown callback {name!r}; built-in: {', '.join(sorted(BUILT_IN))} "
                f"(or give class_path: {EXAMPLE})"
            )
        entry = Entry(where, str(name), BUILT_IN[name].cls, init_args, BUILT_IN[name].defaults)
    else:
        entry = Entry(where, str(path), import_callback(where, str(path)), init_args, _none)
    _check_init_args(entry)
    return entry


def _none(monitor: str) -> dict[str, Any]:
    return {}


_CALLBACK_MESSAGES = DottedMessages(
    not_dotted="{where}.class_path: {path!r} is not a dotted path (" + EXAMPLE + ")",
    unimportable="{where}.class_path: cannot import {path!r} ({error})",
    missing="{where}.class_path: module {module!r} has no {attr!r}",
    wrong_kind="{where}.class_path: {path!r} is not a pytorch_lightning Callback class (distill "
    "trains with pytorch_lightning; a lightning.pytorch callback cannot join it)",
)


def import_callback(where: str, path: str) -> type[pl.Callback]:
    """The Callback class at dotted `path` (a BadValueError naming the entry otherwise)."""
    return import_class(where, path, pl.Callback, _CALLBACK_MESSAGES)


def _check_init_args(entry: Entry) -> None:
    """Refuse init_args the class's constructor does not take, or a required one left out."""
    signature = inspect.signature(entry.cls)
    params = signature.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        takes = [
            n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        unknown = [k for k in entry.init_args if k not in takes]
        if unknown:
            raise BadValueError(
                f"{entry.where}.init_args: {entry.label} takes no argument {unknown[0]!r} "
                f"(it takes: {', '.join(takes) or 'none'})"
            )
    try:
        signature.bind(**{**entry.defaults("monitor"), **entry.init_args})
    except TypeError as err:
        raise BadValueError(f"{entry.where}.init_args: {entry.label}: {err}") from None


def build_callbacks(cfg: DictConfig, monitor: str) -> list[pl.Callback]:
    """The recipe's callbacks, built (early_stopping's monitor defaults to `monitor`)."""
    return [entry.build(monitor) for entry in entries(cfg)]


def check_callbacks(cfg: DictConfig, monitor: str) -> None:
    """Check every entry of `trainer.callbacks` by building it once (before any work)."""
    build_callbacks(cfg, monitor)


def check_resume(checkpoint: Mapping[str, Any], callbacks: list[pl.Callback]) -> None:
    """Refuse to resume from a checkpoint written with weight averaging on without it: its
    `state_dict` holds the average, not the weights training continues from."""
    averaging = any(isinstance(c, WeightAveraging) for c in callbacks)
    if "current_model_state" in checkpoint and not averaging:
        raise UsageError(
            "--resume: last.ckpt was written with weight averaging (trainer.callbacks ema or "
            "swa): resume with the same trainer.callbacks"
        )


__all__ = [
    "BUILT_IN",
    "EMA",
    "SWA",
    "Averaging",
    "ValidateAtMaxSteps",
    "build_callbacks",
    "check_callbacks",
    "check_resume",
    "entries",
    "import_callback",
]
