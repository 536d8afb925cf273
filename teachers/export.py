"""ONNX export of the project's models (`legacy_onnx_export`, `DEFAULT_OPSET`), and the teacher's
classify path on its own features written as ONNX (cost measurement)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.config.schema import ExportConfig
from distill.errors import BadValueError

DEFAULT_OPSET: int = ExportConfig.opset  # the recipe's `export.opset` default, used everywhere

# (category, message regex, module regex) of the warnings the legacy exporter emits on the
# project's models that say nothing wrong about the graph (found by exporting every student,
# the in-house teacher and the streaming graphs with warnings on; tests/deploy/
# test_export_warnings.py). Anything else, e.g. a TracerWarning from a user's student, passes.
_TRACE = "Converting a tensor to a Python boolean"
EXPORT_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # chosen on purpose: the torch.export-based exporter unrolls RNNs to a fixed length
    (DeprecationWarning, "You are using the legacy TorchScript-based ONNX export", ""),
    # torch's exporter calling its own deprecated helper
    (DeprecationWarning, "The feature will be removed. Please remove usage", r"torch\.onnx"),
    (UserWarning, "Constant folding - Only steps=1 can be constant folded", ""),  # DS-CNN
    # no student passes an initial state, and the batch axis is dynamic
    (UserWarning, "Exporting a model to ONNX with a batch_size other than 1, with a var", ""),
    # shape checks on sizes the export keeps fixed (torch's RNN input checks, sub-band count,
    # the in-house teacher's patch limit and its q, k, v split)
    (torch.jit.TracerWarning, _TRACE, r"torch\.nn\.modules\.rnn"),
    (torch.jit.TracerWarning, _TRACE, r"distill\.students\.subspectral_norm"),
    (torch.jit.TracerWarning, "", r"distill\.teachers\.spectrogram_transformer"),
)


@contextmanager
def export_warnings_filtered(
    extra: Sequence[tuple[type[Warning], str, str]] = (),
) -> Iterator[None]:
    """Ignore `EXPORT_WARNINGS` (and `extra`) inside the block; every other warning passes."""
    with warnings.catch_warnings():
        for category, message, module in (*EXPORT_WARNINGS, *extra):
            warnings.filterwarnings("ignore", message, category, module)
        yield


def legacy_onnx_export(
    model: nn.Module,
    args: tuple,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    quiet: Sequence[tuple[type[Warning], str, str]] = (),
    **kwargs: Any,
) -> None:
    """`torch.onnx.export` with the TorchScript exporter (dynamic time axes stay dynamic) at
    `opset`, the known warnings of `EXPORT_WARNINGS` and `quiet` filtered."""
    with export_warnings_filtered(quiet):
        try:
            torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset, **kwargs)
        except RuntimeError as err:
            if not str(err).startswith("Unsupported onnx_opset_version"):
                raise
            raise BadValueError(
                f"ONNX opset {opset} is not one torch.onnx can export to (export.opset, --opset)"
            ) from None


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
    teacher: nn.Module, path: Path, samples: int, opset: int = DEFAULT_OPSET
) -> tuple[Path, tuple, TeacherClassifier]:
    """Write the teacher's classify path as ONNX; returns (path, input shape, wrapper)."""
    wrapper = TeacherClassifier(teacher).eval()
    features = wrapper.teacher_frontend(torch.zeros(2, samples))
    legacy_onnx_export(
        wrapper,
        (features,),
        path,
        opset,
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path, tuple(features.shape), wrapper
