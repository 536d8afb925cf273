"""The stateful streaming student as a LiteRT `.tflite`: one step of
`distill.deploy.stateful_step.StepModel` with its state as explicit tensors, the LiteRT
counterpart of `distill.deploy.onnx_stream.export_stateful`.

The file has one signature (`serving_default`) with the ONNX model's names: inputs `samples`
(1, S) float32 and `state_in.<name>` for every state, outputs `logits` (1, C), `ready` (1,) and
`state_out.<name>`. Start with every state at zero and feed each call's `state_out.*` back as the
next `state_in.*`. The step counter `state_in.step` is int32 (litert-torch converts int64 to
int32; it wraps after 2^31 steps, 5 years of 80 ms steps). The `distill.*` metadata of the ONNX
model (classes, sample rate, window, step, frontend, decision defaults, states) is stored as one
JSON object in the flatbuffer's metadata entry `distill` (`read_tflite_metadata`).
`LiteRTStatefulDetector` runs the file in the LiteRT interpreter as a streaming backend, so the
parity check drives it through the same `waveform_posteriors` as PyTorch.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.deploy.litert import convert_module, require_litert, short_tensor_names
from distill.deploy.onnx_detector import OnnxStatefulDetector, StatefulRunner
from distill.deploy.onnx_stream import (
    DEFAULT_STEP_SECONDS,
    metadata,
    stateful_extra,
    stateful_posteriors,
    stateful_sizes,
)
from distill.deploy.stateful_step import build_step_model, one_thread
from distill.errors import BadValueError, MissingFileError, UsageError
from distill.files import atomic_path

METADATA_NAME = "distill"  # the flatbuffer metadata entry holding the distill.* JSON
SIGNATURE = "serving_default"


class _NamedStep(nn.Module):
    """The step model with keyword inputs and a dict of outputs (identifier names; the
    signature is renamed to the ONNX names after conversion)."""

    def __init__(self, step: nn.Module, count: int) -> None:
        super().__init__()
        self.step, self.count = step, count

    def forward(self, samples: torch.Tensor, **states: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = self.step(samples, *[states[f"state_in_{i}"] for i in range(self.count)])
        named = {f"state_out_{i}": out for i, out in enumerate(outs[2:])}
        return {"logits": outs[0], "ready": outs[1], **named}


def _rename_and_describe(content: bytes, names: list[str], meta: dict[str, str]) -> bytes:
    """Signature keys `samples`, `state_in.<name>`, `state_out.<name>`; metadata `distill`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(content))
    rename = {"args_0": "samples"}
    for i, name in enumerate(names):
        rename[f"state_in_{i}"], rename[f"state_out_{i}"] = f"state_in.{name}", f"state_out.{name}"
    for sig in model.signatureDefs:
        for entry in [*sig.inputs, *sig.outputs]:
            key = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            entry.name = rename.get(key, key)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(fu.convert_object_to_bytearray(model))


@dataclass
class ConvertedStep:
    """One stateful step converted to LiteRT (float, litert-torch's long tensor names), with
    what its metadata and calibration need."""

    content: bytes
    named: _NamedStep
    states: dict[str, torch.Tensor]  # zero states keyed by the pre-rename input names
    names: list[str]  # state names, in input order
    specs: list[tuple[str, tuple[int, ...]]]
    step_samples: int
    window: float


def convert_step(
    det: Any, step_seconds: float = DEFAULT_STEP_SECONDS, window_seconds: float | None = None
) -> ConvertedStep:
    """The stateful step of a `StudentDetector` that can stream statefully, converted."""
    require_litert()
    step_samples, window = stateful_sizes(det, step_seconds, window_seconds)
    sr = det.sample_rate
    with one_thread():
        step, specs = build_step_model(
            det.student, det.frontend, round(window * sr), step_samples, channels_last=True
        )
    names = [n for n, _ in specs]
    states = {
        f"state_in_{i}": torch.zeros(shape, dtype=torch.int32 if n == "step" else torch.float32)
        for i, (n, shape) in enumerate(specs)
    }
    named = _NamedStep(step, len(names)).eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The tensor attributes", category=UserWarning)
        content = convert_module(named, (torch.zeros(1, step_samples),), states, short_names=False)
    return ConvertedStep(content, named, states, names, specs, step_samples, window)


def write_step(
    det: Any,
    converted: ConvertedStep,
    content: bytes,
    path: str | Path,
    extra_meta: dict[str, Any] | None = None,
    variant_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a converted (or quantized) step with short tensor names, the ONNX model's
    signature names and the `distill` metadata (`extra_meta` as for ONNX, `variant_meta` for
    what only this file is, e.g. int8)."""
    c = converted
    shared = stateful_extra(det, c.named.step.plan, c.specs, c.step_samples, c.window, "int32",
                            extra_meta)  # fmt: skip
    meta = metadata(det, "stateful", {"runtime": "LiteRT", **shared, **(variant_meta or {})})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_rename_and_describe(short_tensor_names(content), c.names, meta))
    return path


def export_stateful_tflite(
    det: Any,
    path: str | Path,
    step_seconds: float = DEFAULT_STEP_SECONDS,
    window_seconds: float | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write the stateful streaming `.tflite` (float) of a `StudentDetector` that can stream
    statefully: one step of `step_seconds` audio per call, pooling over `window_seconds`
    (default: the training window)."""
    converted = convert_step(det, step_seconds, window_seconds)
    return write_step(det, converted, converted.content, path, extra_meta)


def read_tflite_metadata(path: str | Path) -> dict[str, Any]:
    """The `distill.*` metadata of a `.tflite` written here, parsed (without the prefix)."""
    require_litert()
    from ai_edge_litert import schema_py_generated as schema

    if not Path(path).is_file():
        raise MissingFileError(f"LiteRT model {path} does not exist")
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            raw = json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
            out: dict[str, Any] = {}
            for key, value in raw.items():
                try:
                    out[key.removeprefix("distill.")] = json.loads(value)
                except json.JSONDecodeError:
                    out[key.removeprefix("distill.")] = value
            return out
    raise UsageError(f"{path} has no `{METADATA_NAME}` metadata: not a stateful model of distill")


class LiteRTStatefulRunner(StatefulRunner):
    """Feeds the stateful `.tflite` one step of samples at a time; its state stays between
    calls, in an interpreter of its own (so two streams of one model never share a state).
    Tensors are set and read by index (the signature's subgraph), not through the signature
    runner's dictionaries, which cost more per call than a step of a small student."""

    def __init__(self, det: LiteRTStatefulDetector) -> None:
        from distill.deploy.litert import interpreter

        super().__init__(det)
        self.it = interpreter(det.path, det.threads)
        runner = self.it.get_signature_runner(SIGNATURE)
        if getattr(runner, "_subgraph_index", 0) != 0:
            raise UsageError(f"{det.path}: signature {SIGNATURE!r} is not the main subgraph")
        ins = {k: v["index"] for k, v in runner.get_input_details().items()}
        outs = {k: v["index"] for k, v in runner.get_output_details().items()}
        specs = det.meta["states"]
        self.samples_index = ins["samples"]
        self.logits_index, self.ready_index = outs["logits"], outs["ready"]
        # (input index, output index) of every state; all start at zero
        self.state_pairs = [(ins[s["input"]], outs[s["output"]]) for s in specs]
        for (index, _), spec in zip(self.state_pairs, specs):
            self.it.set_tensor(index, np.zeros(spec["shape"], np.dtype(spec["dtype"])))

    def run_step(self, samples: np.ndarray) -> np.ndarray | None:
        """One step in the LiteRT interpreter: the logits (C,) once ready, else None."""
        it = self.it
        it.set_tensor(self.samples_index, samples)
        it.invoke()
        ready = it.get_tensor(self.ready_index)[0] > 0
        logits = it.get_tensor(self.logits_index)[0] if ready else None
        for index_in, index_out in self.state_pairs:
            it.set_tensor(index_in, it.get_tensor(index_out))
        return logits


class LiteRTStatefulDetector(OnnxStatefulDetector):
    """A stateful streaming `.tflite` as a streaming backend (LiteRT interpreter, XNNPACK):
    stateful only, with its exported window and step (the checks of the ONNX backend)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:  # noqa: D107
        from distill.deploy.litert import interpreter

        self.path = Path(path)
        self.meta = read_tflite_metadata(path)
        if self.meta.get("variant") != "stateful":
            raise UsageError(f"{path}: distill.variant {self.meta.get('variant')!r}, not stateful")
        self.class_names = list(self.meta["class_names"])
        self.sample_rate = int(self.meta["sample_rate"])
        self.window_seconds = float(self.meta["window_seconds"])
        self.activation = str(self.meta["activation"])
        self.step_samples = int(self.meta["step_samples"])
        self.hop_seconds = self.step_samples / self.sample_rate
        self.threads = threads
        interpreter(path, threads)  # a file LiteRT cannot load fails here; each runner has its own

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "LiteRT"}

    def open_stateful(self, window_samples: int) -> LiteRTStatefulRunner:
        self.check_window(window_samples)
        return LiteRTStatefulRunner(self)


def stateful_tflite_parity(det: Any, path: str | Path, wave: np.ndarray) -> dict[str, float]:
    """Max |posterior difference| and per-hop argmax agreement of the stateful `.tflite`
    against PyTorch's stateful stream over one waveform, fed in chunks that do not divide the
    step."""
    lite = LiteRTStatefulDetector(path)
    ref, got = stateful_posteriors(det, lite, path, wave, "stateful .tflite", BadValueError)
    if not len(ref):
        return {"max_abs_posterior_diff": 0.0, "argmax_agreement": 1.0, "hops": 0}
    return {
        "max_abs_posterior_diff": float(np.abs(ref - got).max()),
        "argmax_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "hops": int(len(ref)),
    }


__all__ = [
    "ConvertedStep",
    "LiteRTStatefulDetector",
    "LiteRTStatefulRunner",
    "convert_step",
    "export_stateful_tflite",
    "read_tflite_metadata",
    "stateful_tflite_parity",
    "write_step",
]
