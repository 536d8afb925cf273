"""Deployment ONNX models that need no Python: waveform-in and stateful streaming.

- waveform-in (`export_waveform`): waveform (B, N) -> logits (B, C); the frontend
  (`distill.deploy.onnx_frontend`) composed in front of a features-in student ONNX (the float
  one, or an int8 one from `distill.deploy.int8.quantize_onnx`).
- stateful (`export_stateful`): one step of `distill.deploy.stateful_step.StepModel`: inputs
  `samples` (1, S) and every state `state_in.<name>`; outputs `logits` (1, C), `ready` (1,)
  and `state_out.<name>`. Feed the outputs back as the next inputs; every state starts at zero.

Both carry `metadata_props` that describe them (`distill.*` keys: variant, classes, sample rate,
window, hop, frontend settings, activation, decision defaults and thresholds, states), read back
by `distill.deploy.onnx_detector.read_metadata`. Parity: `waveform_parity` and
`stateful_parity` compare with PyTorch.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.deploy.decisions import DecisionConfig
from distill.deploy.onnx_frontend import ExportableFrontend, check_frontend
from distill.deploy.onnx_io import export_float
from distill.deploy.stateful_step import build_step_model, initial_states, one_thread
from distill.errors import BadValueError, DistillError, UsageError
from distill.files import atomic_path

FORMAT_VERSION = "1"
VARIANTS = ("waveform", "stateful")
WAVEFORM_TOLERANCE = 1e-3  # max |logit difference| allowed, waveform-in ONNX vs PyTorch
STATEFUL_TOLERANCE = 1e-4  # max |posterior difference| allowed, stateful ONNX vs PyTorch stream
DEFAULT_STEP_SECONDS = 0.1


class StreamParityError(DistillError, RuntimeError):
    """An exported streaming model disagrees with PyTorch more than allowed."""


def metadata(det: Any, variant: str, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The `distill.*` metadata of a model exported from a `StudentDetector`."""
    from distill.data.frontend import frontend_kwargs

    fe = det.frontend
    spec = fe.mel.spectrogram
    front = frontend_kwargs(
        kind=fe.kind, sample_rate=fe.sample_rate, n_mels=fe.mel.n_mels, n_fft=spec.n_fft,
        win_length=spec.win_length, hop_length=spec.hop_length, log_offset=fe.log_offset,
        normalize=fe.normalize, running_seconds=fe.running_seconds,
        **({"n_mfcc": fe.n_features} if fe.kind == "mfcc" else {}),
    )  # fmt: skip
    decisions = DecisionConfig().to_dict(det.class_names)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "variant": variant,
        "student": det.student_name,
        "class_names": list(det.class_names),
        "sample_rate": det.sample_rate,
        "window_seconds": det.window_seconds,
        "hop_seconds": DEFAULT_STEP_SECONDS,
        "frontend": front,
        "activation": det.activation,
        "thresholds": {**decisions, "source": "distill detect defaults"},
        **(extra or {}),
    }
    return {f"distill.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _save(model: Any, path: Path, meta: dict[str, str]) -> Path:
    import onnx

    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


# the step model's ring-buffer checks run on sizes the export keeps fixed
_STEP_WARNINGS = (
    (torch.jit.TracerWarning, "Converting a tensor to a Python", r"distill\.deploy\.stateful_step"),
)


def _torch_export(
    module: torch.nn.Module, args: tuple, path: Path, opset: int | None, **kwargs: Any
) -> None:
    from distill.teachers.export import DEFAULT_OPSET, legacy_onnx_export

    opset = DEFAULT_OPSET if opset is None else opset
    legacy_onnx_export(module, args, path, opset, quiet=_STEP_WARNINGS, **kwargs)


def export_waveform(
    det: Any,
    path: str | Path,
    student_onnx: str | Path | None = None,
    opset: int | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write the waveform-in model of a `StudentDetector`: its frontend composed in front of
    `student_onnx` (a features-in student ONNX, e.g. int8; default: the float student, written
    at `opset`, default `DEFAULT_OPSET`); the frontend takes the student's opset."""
    import onnx
    from onnx import compose

    check_frontend(det.frontend)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if student_onnx is None:
            n_feat = det.frontend.n_features
            frames = det.frontend.num_frames(int(round(det.window_seconds * det.sample_rate)))
            student_onnx = export_float(det.student, Path(tmp) / "s.onnx", n_feat, frames, opset)
        student = onnx.load(str(student_onnx))
        # the frontend at the student's opset: merging needs one version of the default domain
        opset = next(i.version for i in student.opset_import if i.domain in ("", "ai.onnx"))
        front_path = Path(tmp) / "frontend.onnx"
        _torch_export(
            ExportableFrontend(det.frontend).eval(), (torch.zeros(2, det.sample_rate),),
            front_path, opset, input_names=["waveform"], output_names=["features"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"},
                          "features": {0: "batch", 2: "time"}},
        )  # fmt: skip
        front = onnx.load(str(front_path))
        front = compose.add_prefix(front, "frontend/", rename_inputs=False, rename_outputs=False)
        front.ir_version = student.ir_version = max(front.ir_version, student.ir_version)
        input_name = student.graph.input[0].name
        model = compose.merge_models(front, student, io_map=[("features", input_name)])
    meta = metadata(det, "waveform", {"inputs": "waveform (batch, samples) float32 at "
                    "sample_rate, mono, [-1, 1]", "outputs": "logits (batch, classes)",
                    **(extra_meta or {})})  # fmt: skip
    return _save(model, path, meta)


def stateful_sizes(
    det: Any, step_seconds: float, window_seconds: float | None
) -> tuple[int, float]:
    """(step in samples, pooling window in seconds) of a stateful export of `det`; a
    UsageError when `det` cannot stream statefully."""
    reason = det.stateful_reason()
    if reason is not None:
        raise UsageError(f"cannot export a stateful model: {reason}")
    return int(round(step_seconds * det.sample_rate)), window_seconds or det.window_seconds


def stateful_extra(
    det: Any,
    plan: Any,
    specs: list[tuple[str, Any]],
    step_samples: int,
    window: float,
    step_dtype: str,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stateful model's metadata beyond `metadata`'s: step, window, the states (the step
    counter as `step_dtype`), the step plan's pooling and the inputs and outputs."""
    sr = det.sample_rate
    states = [
        {"name": n, "input": f"state_in.{n}", "output": f"state_out.{n}", "shape": list(s),
         "dtype": step_dtype if n == "step" else "float32", "initial": "zeros"}
        for n, s in specs
    ]  # fmt: skip
    return {
        "hop_seconds": step_samples / sr,
        "step_samples": step_samples,
        "window_seconds": window,
        "training_window_seconds": det.window_seconds,
        "states": states,
        "pooling": plan.pooling,
        "window_steps": plan.window_steps,
        "inputs": f"samples (1, {step_samples}) float32: the next {step_samples / sr:g} s of "
        "mono audio at sample_rate; state_in.*: the previous call's state_out.* (zeros first)",
        "outputs": "logits (1, classes) of the last window; ready (1,): 1 once a model step "
        "exists; state_out.*",
        **(extra_meta or {}),
    }


def export_stateful(
    det: Any,
    path: str | Path,
    step_seconds: float = DEFAULT_STEP_SECONDS,
    window_seconds: float | None = None,
    opset: int | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write the stateful streaming model of a `StudentDetector` that can stream statefully:
    one step of `step_seconds` audio per call, pooling over `window_seconds` (default: the
    training window), at `opset` (default `DEFAULT_OPSET`)."""
    import onnx

    step_samples, window = stateful_sizes(det, step_seconds, window_seconds)
    sr = det.sample_rate
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        step, specs = build_step_model(det.student, det.frontend, round(window * sr), step_samples)
        names = [n for n, _ in specs]
        raw = Path(tmp) / "stateful.onnx"
        _torch_export(
            step, (torch.zeros(1, step_samples), *initial_states(specs)), raw, opset,
            input_names=["samples", *[f"state_in.{n}" for n in names]],
            output_names=["logits", "ready", *[f"state_out.{n}" for n in names]],
        )  # fmt: skip
        model = onnx.load(str(raw))
    extra = stateful_extra(det, step.plan, specs, step_samples, window, "int64", extra_meta)
    return _save(model, path, metadata(det, "stateful", extra))


def waveform_parity(det: Any, path: str | Path, waves: list[np.ndarray]) -> dict[str, float]:
    """Max |logit difference| and argmax agreement of the waveform-in ONNX against PyTorch
    (frontend + student) over waveform batches (B, N)."""
    from distill.cost import session

    sess = session(path, threads=1)
    diffs, agree, n = [], 0, 0
    with torch.inference_mode(), one_thread():
        for wave in waves:
            ref = det.student(det.frontend(torch.as_tensor(wave, dtype=torch.float32))).numpy()
            got = sess.run(None, {"waveform": np.asarray(wave, np.float32)})[0]
            diffs.append(float(np.abs(ref - got).max()))
            agree += int((ref.argmax(1) == got.argmax(1)).sum())
            n += len(ref)
    return {"max_abs_logit_diff": max(diffs), "agreement_with_torch": agree / n, "clips": n}


def stateful_posteriors(
    det: Any, backend: Any, path: str | Path, wave: np.ndarray, what: str, error: type[Exception]
) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors (hops, C) of PyTorch's stateful stream and of `backend`'s (the exported
    `what` at `path`) over one waveform, fed in chunks that do not divide the step; `error`
    when their hops differ."""
    from distill.deploy.stream import StreamConfig, waveform_posteriors

    config = StreamConfig(
        mode="stateful", hop_seconds=backend.hop_seconds, window_seconds=backend.window_seconds
    )
    with one_thread():
        ref = waveform_posteriors(det, wave, config, chunk_seconds=0.37)
        got = waveform_posteriors(backend, wave, config, chunk_seconds=0.53)
    if ref.scores.shape != got.scores.shape or not np.allclose(ref.times, got.times):
        raise error(
            f"{path}: the {what} gave {got.scores.shape} posteriors, PyTorch {ref.scores.shape}"
        )
    return ref.scores, got.scores


def stateful_parity(det: Any, path: str | Path, wave: np.ndarray) -> dict[str, float]:
    """Max |posterior difference| of the stateful ONNX against PyTorch's stateful stream over
    one waveform, fed in chunks that do not divide the step."""
    from distill.deploy.onnx_detector import OnnxStatefulDetector

    backend = OnnxStatefulDetector(path)
    ref, got = stateful_posteriors(det, backend, path, wave, "stateful ONNX", StreamParityError)
    diff = float(np.abs(ref - got).max()) if len(ref) else 0.0
    return {"max_abs_posterior_diff": diff, "hops": int(len(ref))}


def check_parity(path: Path, value: float, tolerance: float, what: str) -> None:
    """Raise StreamParityError when `value` exceeds `tolerance`."""
    if not value <= tolerance:
        raise StreamParityError(
            f"{path}: {what} differs from PyTorch by {value:.3g}, more than the allowed "
            f"{tolerance:g}; the export is broken"
        )


def step_seconds_for(det: Any, wanted: float = DEFAULT_STEP_SECONDS) -> float:
    """The longest valid stateful step not above `wanted` (else the shortest valid one above
    it): a multiple of the frontend hop that gives every layer a constant number of inputs."""
    from distill.deploy.stateful_step import plan_steps

    hop = det.frontend.hop_length
    window = int(round(det.window_seconds * det.sample_rate))
    count = max(1, int(round(wanted * det.sample_rate)) // hop)
    error = ""
    with one_thread():
        for frames in [*range(count, 0, -1), *range(count + 1, count + 65)]:
            try:
                plan_steps(det.student, det.frontend, window, frames * hop)
            except BadValueError as err:
                error = str(err)
                continue
            return frames * hop / det.sample_rate
    raise BadValueError(f"no stateful step up to {count + 64} frames fits: {error}")


__all__ = [
    "STATEFUL_TOLERANCE",
    "VARIANTS",
    "WAVEFORM_TOLERANCE",
    "StreamParityError",
    "check_parity",
    "export_stateful",
    "export_waveform",
    "metadata",
    "stateful_extra",
    "stateful_parity",
    "stateful_posteriors",
    "stateful_sizes",
    "step_seconds_for",
    "waveform_parity",
]
