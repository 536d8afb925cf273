"""The teacher's classify path on its own features, and writing it as ONNX (cost measurement)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class _Unflatten(nn.Module):
    """Stands in for a teacher's frontend: (B, F*T) -> (B, F, T) features."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n_features, -1)


class TeacherClassifier(nn.Module):
    """The teacher's classify path on its own features (its log-mel frontend taken out, as for
    the students: every benchmarked model starts from features)."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        frontend = getattr(teacher, "frontend", None)
        if frontend is None or not hasattr(frontend, "n_features"):
            raise TypeError(
                f"teacher {type(teacher).__name__} has no feature frontend to take out; only "
                "spectrogram teachers export to ONNX here"
            )
        self.teacher_frontend = frontend
        self.teacher = teacher
        teacher.frontend = _Unflatten(frontend.n_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.teacher.classify(features.flatten(1))


def export_teacher(
    teacher: nn.Module, path: Path, samples: int, opset: int
) -> tuple[Path, tuple, TeacherClassifier]:
    """Write the teacher's classify path as ONNX; returns (path, input shape, wrapper)."""
    wrapper = TeacherClassifier(teacher).eval()
    features = wrapper.teacher_frontend(torch.zeros(2, samples))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (features,),
            str(path),
            dynamo=False,
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
        )
    return path, tuple(features.shape), wrapper
