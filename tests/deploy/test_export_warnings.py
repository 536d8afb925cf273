"""ONNX exports filter only the exporter's known warnings: the project's exports are quiet, and
any other warning (a user's own, a trace warning of a user's student) still gets through."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from distill.teachers.export import export_teacher
from torch import nn

from distill import students, teachers
from distill.deploy.onnx_io import export_float
from distill.deploy.onnx_stream import export_stateful, step_seconds_for
from tests.deploy.stream_helpers import detector


def caught(export) -> list[str]:
    """'Category: message' of every warning `export()` lets through (none hidden by default)."""
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        export()
    return [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in found]


class Chatty(nn.Module):
    """A user's student that warns, and branches on a tensor (a trace warning)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("user warning from forward", UserWarning, stacklevel=1)
        y = self.conv(x).mean(-1)
        return y if y.sum() > -1e9 else -y


def test_other_warnings_get_through(tmp_path: Path) -> None:
    found = caught(lambda: export_float(Chatty(), tmp_path / "c.onnx", 4, 9))
    assert "UserWarning: user warning from forward" in found
    assert any(
        f.startswith("TracerWarning: Converting a tensor to a Python boolean") for f in found
    )
    assert not any("legacy TorchScript-based ONNX export" in f for f in found)  # filtered


def test_the_projects_exports_are_quiet(tmp_path: Path) -> None:
    # each name emits a filtered warning: GRU (RNN checks, batch-size note), sub-spectral norm's
    # shape check, DS-CNN's constant folding note; every export the legacy-exporter deprecation
    for name in ("gru", "bc_resnet1", "ds_cnn_s"):
        model = students.create(name, num_classes=3, n_features=40)
        assert caught(lambda m=model: export_float(m, tmp_path / "s.onnx", 40, 51)) == [], name
    teacher = teachers.spec("inhouse").cls.build(["a", "b"], preset="tiny").eval()
    assert caught(lambda: export_teacher(teacher, tmp_path / "t.onnx", 16000)) == []
    det = detector("tc_resnet8", causal=True)  # the step model's ring-buffer checks
    step = step_seconds_for(det)
    assert caught(lambda: export_stateful(det, tmp_path / "st.onnx", step)) == []
