"""Exported ONNX models as backends of the streaming runtime (`distill detect model.onnx`).

`load_onnx_detector(path)` reads the model's `distill.*` metadata (`read_metadata`; written by
distill.deploy.onnx_stream) and gives a waveform-in model as `OnnxWaveformDetector` (sliding
window; any window length the frontend and student take) or a stateful one as
`OnnxStatefulDetector` (stateful only: its window and step are fixed at export; the hop must be
a multiple of the step). A features-in student ONNX (no frontend, no metadata) is refused with
what to export instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.deploy.stream import check_window_fits
from distill.errors import BadValueError, UsageError

ACTIVATIONS = ("softmax", "sigmoid")


def _activate(logits: np.ndarray, activation: str) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(logits, np.float32))
    return x.softmax(-1) if activation == "softmax" else x.sigmoid()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `distill.*` metadata of an exported model, parsed (without the prefix)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith("distill."):
            key = prop.key.removeprefix("distill.")
            try:
                out[key] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[key] = prop.value
    return out


class _OnnxBase:
    variant = ""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        from distill.cost import session

        self.path = Path(path)
        self.meta = meta
        self.class_names = list(meta["class_names"])
        self.sample_rate = int(meta["sample_rate"])
        self.window_seconds = float(meta["window_seconds"])
        self.activation = str(meta["activation"])
        if self.activation not in ACTIVATIONS:
            raise BadValueError(f"{path}: activation {self.activation!r} not in {ACTIVATIONS}")
        self.session = session(self.path, threads)

    def describe(self) -> dict[str, Any]:
        """What the model is, for the output record."""
        return {
            "source": str(self.path),
            "backend": "onnxruntime",
            "variant": self.variant,
            "student": self.meta.get("student"),
            "classes": self.class_names,
            "activation": self.activation,
            "training_window_seconds": self.meta.get(
                "training_window_seconds", self.window_seconds
            ),
            "sample_rate": self.sample_rate,
            "frontend": self.meta.get("frontend"),
        }


class OnnxWaveformDetector(_OnnxBase):
    """A waveform-in ONNX model: scores windows (sliding window only)."""

    variant = "waveform"

    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Posteriors (B, C) of waveform windows (B, N)."""
        wave = windows.float().numpy()
        logits = self.session.run(["logits"], {"waveform": wave})[0]
        return _activate(logits, self.activation)

    def check_window(self, window_samples: int) -> None:
        """Refuse a window the model cannot take (too short)."""
        check_window_fits(self, window_samples, str(self.path))

    def stateful_reason(self) -> str | None:
        return (
            f"{self.path.name} is a waveform-in model (it scores whole windows); export the "
            "stateful variant (distill export RUN --variant stateful) to stream statefully"
        )

    def open_stateful(self, window_samples: int) -> Any:
        raise UsageError(self.stateful_reason())


class StatefulRunner:
    """Feeds a stateful exported model one step of samples at a time; its state stays between
    calls. A subclass runs the model's one step (`run_step`) in its runtime."""

    def __init__(self, det: Any) -> None:
        self.det = det
        self._pending = np.zeros(0, np.float32)
        self._logits: np.ndarray | None = None

    def run_step(self, samples: np.ndarray) -> np.ndarray | None:
        """Run one step of samples (1, S), carrying the state: the logits (C,) once a model
        step exists, else None."""
        raise NotImplementedError

    def advance(self, samples: torch.Tensor) -> None:
        """Consume mono samples (N,); runs a step for every full step of samples."""
        step = self.det.step_samples
        x = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        done = 0
        while x.size - done >= step:
            logits = self.run_step(x[None, done : done + step])
            if logits is not None:
                self._logits = logits
            done += step
        self._pending = x[done:]

    def posterior(self) -> torch.Tensor | None:
        """Posteriors (C,) after the last full step; None before the first model step."""
        return None if self._logits is None else _activate(self._logits, self.det.activation)

    def describe(self) -> dict[str, Any]:
        """The stream's pooling, window (in model steps) and step (in samples)."""
        return {
            "pooling": self.det.meta.get("pooling"),
            "window_steps": self.det.meta.get("window_steps"),
            "step_samples": self.det.step_samples,
        }


class OnnxStatefulRunner(StatefulRunner):
    """Feeds the stateful ONNX one step of samples at a time; its state stays between calls."""

    def __init__(self, det: OnnxStatefulDetector) -> None:
        super().__init__(det)
        self.states = {
            s["input"]: np.zeros(s["shape"], np.int64 if s["dtype"] == "int64" else np.float32)
            for s in det.meta["states"]
        }
        self.outputs = ["logits", "ready", *[s["output"] for s in det.meta["states"]]]
        self.inputs = [s["input"] for s in det.meta["states"]]

    def run_step(self, samples: np.ndarray) -> np.ndarray | None:
        """One step in onnxruntime: the logits (C,) once ready, else None."""
        out = self.det.session.run(self.outputs, {"samples": samples, **self.states})
        self.states = dict(zip(self.inputs, out[2:]))
        return out[0][0] if out[1][0] > 0 else None


class OnnxStatefulDetector(_OnnxBase):
    """A stateful streaming ONNX model: streams statefully with its exported window and step."""

    variant = "stateful"

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None, threads: int = 1):
        super().__init__(path, meta or read_metadata(path), threads)
        self.step_samples = int(self.meta["step_samples"])
        self.hop_seconds = self.step_samples / self.sample_rate

    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        raise UsageError(self.sliding_reason())

    def sliding_reason(self) -> str:
        """Why this model cannot score a sliding window."""
        return (
            f"{self.path.name} is a stateful streaming model: it cannot score windows; use "
            "--mode auto or stateful (or export --variant waveform for a sliding window)"
        )

    def check_window(self, window_samples: int) -> None:
        """The window is fixed at export (its ring of model steps)."""
        exported = int(round(self.window_seconds * self.sample_rate))
        if window_samples != exported:
            raise BadValueError(
                f"{self.path.name} pools over {self.window_seconds:g} s (fixed at export); "
                f"asked for {window_samples / self.sample_rate:g} s: drop --window or re-export "
                "with --window"
            )

    def check_hop(self, hop_samples: int) -> None:
        """The hop must be a whole number of the exported steps."""
        if hop_samples % self.step_samples:
            raise BadValueError(
                f"{self.path.name} steps {self.hop_seconds:g} s at a time (fixed at export); "
                f"the hop {hop_samples / self.sample_rate:g} s must be a multiple of it"
            )

    def stateful_reason(self) -> str | None:
        return None

    def open_stateful(self, window_samples: int) -> OnnxStatefulRunner:
        self.check_window(window_samples)
        return OnnxStatefulRunner(self)


def load_onnx_detector(path: str | Path, activation: str | None = None) -> _OnnxBase:
    """The backend of an exported waveform-in or stateful ONNX model."""
    meta = read_metadata(path)
    variant = meta.get("variant")
    if variant is None:
        raise UsageError(
            f"{path} is not a waveform-in or stateful model exported by distill (no distill.* "
            "metadata; a features-in student ONNX needs the Python frontend): export one with "
            "distill export RUN --variant waveform (or stateful)"
        )
    if activation is not None:
        meta["activation"] = activation
    if variant == "waveform":
        return OnnxWaveformDetector(path, meta)
    if variant == "stateful":
        return OnnxStatefulDetector(path, meta)
    raise UsageError(f"{path}: unknown distill.variant {variant!r}")


__all__ = [
    "OnnxStatefulDetector",
    "OnnxStatefulRunner",
    "OnnxWaveformDetector",
    "StatefulRunner",
    "load_onnx_detector",
    "read_metadata",
]
