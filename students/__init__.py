"""Compact students: features (B, F, T) in, logits (B, num_classes) out.

`create(name, num_classes=..., n_features=...)` builds a registered student or any importable
class given by dotted path (`create(name, pretrained=...)` loads a saved one); `spec(name)` tells
its default time tap; `FeatureTap` reads the tapped time features (B, T', C) with a removable
forward hook; `save_pretrained(model, dir)` / `from_pretrained(dir_or_hub_id)` write and read
students as hub-style folders (model.safetensors + config.json + README.md).
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
from distill.students.hub import create, from_pretrained, save_pretrained
from distill.students.profile import count_macs, count_params
from distill.students.registry import (
    StudentSpec,
    UnknownStudentError,
    available,
    created_with,
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
    "created_with",
    "from_pretrained",
    "register_student",
    "save_pretrained",
    "spec",
    "to_time_features",
]
