"""Temporal knowledge distillation from attention audio teachers into compact students.

The public names below load on first use (PEP 562), so `import distill` and `import
distill.errors` stay light (no torch); `distill.DistillModule` imports the training code only
when it is asked for. This package sits on top of the layers: no module of the framework
imports it (they import the submodules themselves). See docs/python_api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from distill._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    # the project's LightningModule, built from a recipe or from parts
    "DistillModule": "distill.core.module",
    # distilling in your own training loop or LightningModule
    "DistillLoss": "distill.core.kd",
    "TemporalKDCallback": "distill.core.callback",
    "kd_loss": "distill.core.callback",
    # loss terms: LossInputs in, a scalar out
    "LossInputs": "distill.core.losses",
    "LogitKD": "distill.core.losses",
    "TaskLoss": "distill.core.losses",
    "TemporalAttentionHead": "distill.core.losses",
    "TemporalAttentionKD": "distill.core.losses",
    "TemporalAttentionTransfer": "distill.core.losses",
    "TimeAlignedHint": "distill.core.losses",
    "register_loss": "distill.core.losses",
    # teachers and attention rollout
    "TeacherOutput": "distill.teachers.base",
    "attention_rollout": "distill.teachers.rollout",
    "query_row": "distill.teachers.rollout",
    # students: the tap, hub-style saving and loading
    "FeatureTap": "distill.students.tap",
    "from_pretrained": "distill.students.hub",
    "save_pretrained": "distill.students.hub",
    "save_run_pretrained": "distill.pipeline.artifacts",
    # expected errors
    "BadValueError": "distill.errors",
    "DistillError": "distill.errors",
    "MissingFileError": "distill.errors",
    "UsageError": "distill.errors",
}
_SUBPACKAGES = ("students", "teachers")

# = __version__, every key of _EXPORTS and the subpackages (tests/api checks it)
__all__ = [
    "BadValueError",
    "DistillError",
    "DistillLoss",
    "DistillModule",
    "FeatureTap",
    "LogitKD",
    "LossInputs",
    "MissingFileError",
    "TaskLoss",
    "TeacherOutput",
    "TemporalAttentionHead",
    "TemporalAttentionKD",
    "TemporalAttentionTransfer",
    "TemporalKDCallback",
    "TimeAlignedHint",
    "UsageError",
    "__version__",
    "attention_rollout",
    "from_pretrained",
    "kd_loss",
    "query_row",
    "register_loss",
    "save_pretrained",
    "save_run_pretrained",
    "students",
    "teachers",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (other submodules import as usual)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"distill.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what static type checkers and IDEs see
    from distill import students, teachers
    from distill.core.callback import TemporalKDCallback, kd_loss
    from distill.core.kd import DistillLoss
    from distill.core.losses import (
        LogitKD,
        LossInputs,
        TaskLoss,
        TemporalAttentionHead,
        TemporalAttentionKD,
        TemporalAttentionTransfer,
        TimeAlignedHint,
        register_loss,
    )
    from distill.core.module import DistillModule
    from distill.errors import BadValueError, DistillError, MissingFileError, UsageError
    from distill.pipeline.artifacts import save_run_pretrained
    from distill.students.hub import from_pretrained, save_pretrained
    from distill.students.tap import FeatureTap
    from distill.teachers.base import TeacherOutput
    from distill.teachers.rollout import attention_rollout, query_row
