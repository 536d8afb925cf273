"""Model backends for the streaming runtime: a trained student from a run, checkpoint or file.

`load_detector_model(path)` picks the backend from what `path` is; `StudentDetector` runs the
PyTorch student with its own frontend; exported ONNX models run in onnxruntime
(`distill.deploy.onnx_detector`), a stateful `.tflite` in the LiteRT interpreter
(`distill.deploy.litert_stream`). Any backend offers the methods of
`distill.deploy.stream.DetectorModel`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.data.frontend import Frontend, frontend_kwargs
from distill.deploy.stateful import StatefulRunner, stateful_reason
from distill.deploy.stream import check_window_fits
from distill.errors import BadValueError, MissingFileError, UsageError
from distill.pipeline.artifacts import STUDENT_FILE, load_module, load_student, resolve

ACTIVATIONS = {"single_label": "softmax", "multi_label": "sigmoid"}
STUDENT_SUFFIXES = (".safetensors", ".pt")  # a saved student (.pt: older versions)


class StudentDetector:
    """A student and its frontend as a `DetectorModel`: posteriors = activation(logits)."""

    def __init__(
        self,
        student: nn.Module,
        frontend: Frontend,
        class_names: list[str],
        window_seconds: float,
        activation: str,
        source: str = "",
        student_name: str = "",
        clip_seconds: float | None = None,
        history_seconds: float = 0.0,
    ) -> None:
        if activation not in ("softmax", "sigmoid"):
            raise BadValueError(f"activation must be softmax or sigmoid, given {activation!r}")
        self.student = student.eval()
        self.frontend = frontend.eval()
        self.class_names = list(class_names)
        self.sample_rate = int(frontend.sample_rate)
        self.window_seconds = float(window_seconds)
        self.activation = activation
        self.source = source
        self.student_name = student_name or type(student).__name__
        self.clip_seconds = None if clip_seconds is None else float(clip_seconds)  # training clips
        self.history_seconds = float(history_seconds)  # heard before each training clip

    @torch.inference_mode()
    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Posteriors (B, C) of waveform windows (B, N)."""
        logits = self.student(self.frontend(windows.float()))
        return logits.softmax(-1) if self.activation == "softmax" else logits.sigmoid()

    def check_window(self, window_samples: int) -> None:
        """Refuse a window the frontend or the student cannot take (too short)."""
        check_window_fits(self, window_samples, f"{self.student_name} with its frontend")

    def stateful_reason(self) -> str | None:
        """Why this student cannot stream statefully, or None."""
        return stateful_reason(self.student, self.frontend)

    def open_stateful(self, window_samples: int) -> StatefulRunner:
        """A fresh stateful runner (its own state) over this student."""
        return StatefulRunner(self.student, self.frontend, window_samples, self.activation)

    def describe(self) -> dict[str, Any]:
        """What the model is, for the output record."""
        fe = self.frontend
        return {
            "source": self.source,
            "backend": "pytorch",
            "student": self.student_name,
            "classes": self.class_names,
            "activation": self.activation,
            "training_window_seconds": self.window_seconds,
            "training_clip_seconds": self.clip_seconds,
            "training_history_seconds": self.history_seconds,
            "sample_rate": self.sample_rate,
            "frontend": {
                "kind": fe.kind,
                "n_features": fe.n_features,
                "hop_length": fe.hop_length,
                "normalize": fe.normalize,
                **({"running_seconds": fe.running_seconds} if fe.normalize == "running" else {}),
            },
        }


def _task_near(path: Path) -> str | None:
    for folder in (path.parent, path.parent.parent):
        results = folder / "results.json"
        if results.is_file():
            task = json.loads(results.read_text()).get("task")
            if task:
                return task
    return None


def _activation(task: str | None, override: str | None, path: Path) -> str:
    if override is not None:
        return override
    if task not in ACTIVATIONS:
        raise UsageError(
            f"{path}: cannot tell whether the model is single- or multi-label (no task in the "
            "file or a results.json beside it); pass --activation softmax or sigmoid"
        )
    return ACTIVATIONS[task]


def _from_student_file(path: Path, activation: str | None) -> StudentDetector:
    model, info = load_student(path)
    frontend = Frontend(**frontend_kwargs(**info["frontend"]))
    task = info.get("task") or _task_near(path)
    return StudentDetector(
        model,
        frontend,
        info["class_names"],
        info.get("detection_window_seconds", info["clip_seconds"]),
        _activation(task, activation, path),
        source=str(path),
        student_name=str(info["name"]),
        clip_seconds=info.get("clip_seconds"),
        history_seconds=info.get("history_seconds", 0.0),
    )


def _from_checkpoint(path: Path, activation: str | None) -> StudentDetector:
    module = load_module(path)
    return StudentDetector(
        module.student,
        module.frontend,
        module.class_names,
        module.detection_window_seconds,
        _activation(module.task, activation, path),
        source=str(path),
        student_name=str(module.cfg.student.target or module.cfg.student.name),
        clip_seconds=module.clip_seconds,
        history_seconds=module.history_seconds,
    )


def _from_tflite(path: Path, activation: str | None) -> Any:
    """A stateful streaming `.tflite` (distill export --variant stateful --format tflite)."""
    from distill.deploy.litert_stream import LiteRTStatefulDetector, read_tflite_metadata

    if read_tflite_metadata(path).get("variant") != "stateful":
        raise UsageError(
            f"{path}: not a stateful streaming .tflite (a features-in .tflite needs the Python "
            "frontend): export one with `distill export RUN --variant stateful --format tflite`"
        )
    det = LiteRTStatefulDetector(path)
    if activation is not None:
        if activation not in ACTIVATIONS.values():
            raise BadValueError(f"activation must be softmax or sigmoid, given {activation!r}")
        det.activation = activation
    return det


def load_detector_model(path: str | Path, activation: str | None = None) -> Any:
    """The backend for a run directory (its saved student, else its best checkpoint), a .ckpt,
    a saved student file, an exported waveform-in or stateful .onnx (distill export
    --variant waveform|stateful) or a stateful .tflite (--variant stateful --format tflite,
    run in the LiteRT interpreter). `activation` overrides softmax/sigmoid (default: from the
    task, or the exported model's metadata)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"model {path} does not exist")
    if path.is_dir() and (path / STUDENT_FILE).is_file():
        return _from_student_file(path / STUDENT_FILE, activation)
    if path.is_file() and path.suffix in STUDENT_SUFFIXES:
        return _from_student_file(path, activation)
    if path.is_file() and path.suffix == ".onnx":
        from distill.deploy.onnx_detector import load_onnx_detector

        return load_onnx_detector(path, activation)
    if path.is_file() and path.suffix == ".tflite":
        return _from_tflite(path, activation)
    checkpoint, _ = resolve(path)
    return _from_checkpoint(checkpoint, activation)
