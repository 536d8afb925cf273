"""Compact students: features (B, F, T) in, logits (B, num_classes) out.

`create(name, num_classes=..., n_features=...)` builds a registered student or any importable
class given by dotted path; `spec(name)` tells its default time tap; `FeatureTap` reads the
tapped time features (B, T', C) with a removable forward hook.
"""

from __future__ import annotations

from distill.students import (  # noqa: F401  (imported to register the built-ins)
    att_rnn,
    bc_resnet,
    crnn,
    ds_cnn,
    gru,
    lstm_p,
    tc_resnet,
    timm_cnn,
)
from distill.students.profile import count_macs, count_params
from distill.students.registry import (
    StudentSpec,
    UnknownStudentError,
    available,
    create,
    register_student,
    spec,
)
from distill.students.tap import FeatureTap, to_time_features

__all__ = [
    "FeatureTap",
    "StudentSpec",
    "UnknownStudentError",
    "available",
    "count_macs",
    "count_params",
    "create",
    "register_student",
    "spec",
    "to_time_features",
]
