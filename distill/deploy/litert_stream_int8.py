"""The stateful streaming `.tflite` with an int8 student: the student's operators full-integer
(int8 weights and activations, ai-edge-quantizer's static recipe, min-max ranges), the
frontend and the pooled window float.

The frontend stays float because its values span many decades before the log (the power
spectrum of silence and of a shout in one tensor): one int8 scale cannot hold them. Its states
stay float too (the carried audio, and the running mean and variance of `normalize=running`,
whose small per-step updates int8 would round away). The pooled window (a masked mean of the
student's last features over a ring of past steps) stays float: in int8 its sum over the ring
and the division by the count of steps heard lost the keyword (argmax agreement with float
26-50 % of hops on a trained 8 s TC-ResNet8, 2026-12-04). The student's states (its
convolution buffers) are int8 inside and float at the file's boundary (each is quantized on
entry and dequantized on exit), so the file is driven exactly as the float one
(`LiteRTStatefulDetector`). Activation ranges come from the float step run over calibration
audio (the run's validation clips played one after another, never the test split): every
step's inputs, states included, as the stream feeds them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.deploy.litert_calibration import SIGNATURE, min_max_ranges
from distill.deploy.litert_stream import ConvertedStep, convert_step, write_step
from distill.deploy.memory import op_names
from distill.deploy.onnx_stream import DEFAULT_STEP_SECONDS
from distill.errors import BadValueError, DistillError

FRONTEND_PATTERN = ".*StepFrontend.*"  # litert-torch's tensor names carry the module path
STEP_GLUE_PATTERN = r"StepModel_step;\d+;"  # operators of the step itself, not of a submodule


class FrontendQuantizedError(DistillError, RuntimeError):
    """The quantizer turned a frontend operator into int8 (its tensor names changed)."""


def step_calibration(converted: ConvertedStep, wave: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The inputs of every whole step of `wave` (mono float32) as the float step sees them in a
    stream from zero states, keyed by the converted signature's names."""
    c = converted
    if wave.size < c.step_samples:
        raise BadValueError(
            f"int8 calibration needs at least one step of audio ({c.step_samples} samples); "
            f"got {wave.size}"
        )
    states = dict(c.states)
    inputs = []
    with torch.no_grad():
        for lo in range(0, wave.size - c.step_samples + 1, c.step_samples):
            samples = torch.from_numpy(np.ascontiguousarray(wave[None, lo : lo + c.step_samples]))
            inputs.append({"args_0": samples.numpy(), **{k: v.numpy() for k, v in states.items()}})
            out = c.named(samples, **states)
            states = {k: out[k.replace("state_in", "state_out")].to(v.dtype)
                      for k, v in states.items()}  # fmt: skip
    return inputs


def quantize_step(converted: ConvertedStep, calibration: list[dict[str, np.ndarray]]) -> bytes:
    """The converted step with its student int8 and the operators of `float_patterns` float
    (long tensor names)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "step.tflite"
        float_path.write_bytes(converted.content)
        q = quantizer.Quantizer(str(float_path))
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        no = AlgorithmName.NO_QUANTIZE
        for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            q.update_quantization_recipe(".*", op, algorithm_key=no)
        kept_float = float_patterns(converted)
        for pattern in kept_float:
            q.update_quantization_recipe(
                pattern, qtyping.TFLOperationName.ALL_SUPPORTED, algorithm_key=no
            )
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")  # progress bars and preserve-all-tensors chatter
            ranges = min_max_ranges(q, float_path, calibration)
            content = bytes(q.quantize(ranges, enable_progress_report=False).quantized_model)
    content = _outputs_past_dequantize(content)
    _check_frontend_float(content, kept_float)
    return content


def _outputs_past_dequantize(content: bytes) -> bytes:
    """Point every signature output at a float tensor the graph outputs. Where other operators
    also read an output tensor, the quantizer makes the graph output a requantized int8 copy of
    it while the signature keeps the int8 tensor inside the graph, which LiteRT never
    materialises (a state that is a whole convolution output, e.g. TC-ResNet8 at a 0.16 s step):
    the output becomes the DEQUANTIZE of that tensor instead."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    kinds = op_names(schema.Model.GetRootAs(content, 0))
    model = fu.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    outputs = [int(i) for i in graph.outputs]
    dequantized, copies = {}, {}  # int8 tensor -> its DEQUANTIZE / requantized copy
    for op in graph.operators:
        kind = kinds[op.opcodeIndex]
        if kind == "DEQUANTIZE":
            dequantized[int(op.inputs[0])] = int(op.outputs[0])
        elif kind == "QUANTIZE":
            copies[int(op.inputs[0])] = int(op.outputs[0])
    changed = False
    for sig in model.signatureDefs:
        for entry in sig.outputs:
            index = int(entry.tensorIndex)
            if index in outputs:
                continue
            name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            if index not in dequantized:
                raise DistillError(
                    f"int8 step: signature output {name} is not an output of the graph and no "
                    "DEQUANTIZE reads it"
                )
            new = dequantized[index]
            if copies.get(index) in outputs:
                outputs[outputs.index(copies[index])] = new
            else:
                outputs.append(new)
            entry.tensorIndex, changed = new, True
    if not changed:
        return content
    graph.outputs = np.array(outputs, dtype=np.int32)
    return bytes(fu.convert_object_to_bytearray(model))


def float_patterns(converted: ConvertedStep) -> list[str]:
    """Op-scope patterns (output-tensor names, as the quantizer matches them) of the operators
    kept float: the frontend (its module path), the step's own operators around the student
    (the first-step flag and the pooled window: a masked mean over a ring of past steps, whose
    int8 sum and division lose the keyword), and the outputs of the states that are not the
    student's (carried audio, running mean and variance, the ring and its counters), which
    the converter names after the signature."""
    outputs = [
        f"{SIGNATURE}_state_out_{i}_output;"
        for i, name in enumerate(converted.names)
        if name.split(".")[0] in ("frontend", "ring", "ring_count", "step")
    ]
    return [FRONTEND_PATTERN, STEP_GLUE_PATTERN, *outputs]


def _check_frontend_float(content: bytes, patterns: list[str]) -> None:
    """Refuse a step whose frontend operators (outputs named by `patterns`) came out int8, or
    where a pattern names no operator; the QUANTIZE that hands the features to the int8
    student is the boundary, not the frontend."""
    import re

    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    graph, names = model.Subgraphs(0), op_names(model)
    found = dict.fromkeys(patterns, 0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if names[op.OpcodeIndex()] == "QUANTIZE":
            continue
        tensor = graph.Tensors(op.Outputs(0))
        name = tensor.Name().decode()
        for pattern in patterns:
            if re.search(pattern, f"{name};"):  # as the quantizer matches an op's scope
                found[pattern] += 1
                if tensor.Type() == schema.TensorType.INT8:
                    raise FrontendQuantizedError(
                        f"int8 step: frontend operator {i} came out int8 ({name})"
                    )
    missing = [pattern for pattern, count in found.items() if not count]
    if missing:
        raise FrontendQuantizedError(
            f"int8 step: no operator output matches {missing[0]!r}; the converter's tensor "
            "names changed, so the frontend cannot be kept float"
        )


def write_stateful_int8(
    det: Any,
    converted: ConvertedStep,
    path: str | Path,
    calibration_wave: np.ndarray,
    extra_meta: dict[str, Any] | None = None,
    calibration_source: str = "given audio",
) -> Path:
    """Write a converted step with its student int8 and its frontend and pooled window float,
    activation ranges from `calibration_wave` (mono float32 at the model's sample rate, streamed
    step by step from zero states)."""
    wave = np.asarray(calibration_wave, np.float32).reshape(-1)
    calibration = step_calibration(converted, wave)
    content = quantize_step(converted, calibration)
    seconds = len(calibration) * converted.step_samples / det.sample_rate
    variant = {
        "int8": "student int8 (weights and activations, min-max ranges), frontend and pooled "
        "window float, states float at the inputs and outputs",
        "calibration": f"{calibration_source}: {len(calibration)} steps ({seconds:g} s)",
    }
    return write_step(det, converted, content, path, extra_meta, variant)


def export_stateful_tflite_int8(
    det: Any,
    path: str | Path,
    calibration_wave: np.ndarray,
    step_seconds: float = DEFAULT_STEP_SECONDS,
    window_seconds: float | None = None,
    extra_meta: dict[str, Any] | None = None,
    calibration_source: str = "given audio",
) -> Path:
    """Write the stateful `.tflite` of a `StudentDetector` with its student int8 and its
    frontend and pooled window float (`write_stateful_int8` of its converted step)."""
    converted = convert_step(det, step_seconds, window_seconds)
    return write_stateful_int8(det, converted, path, calibration_wave, extra_meta,
                               calibration_source)  # fmt: skip


__all__ = [
    "FRONTEND_PATTERN",
    "FrontendQuantizedError",
    "export_stateful_tflite_int8",
    "float_patterns",
    "quantize_step",
    "step_calibration",
    "write_stateful_int8",
]
