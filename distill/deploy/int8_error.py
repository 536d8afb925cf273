"""Where an int8 model loses precision: per-tensor signal-to-quantization-noise ratio (SQNR)
of an onnxruntime QDQ model against the float model it was quantized from.

onnxruntime's `quantization.qdq_loss_debug` computes the same numbers (its `xmodel_err`: max
difference 1.4e-6 dB over every activation of random TC-ResNet8, BC-ResNet-1 and DS-CNN-S
int8 models; tests/deploy/test_int8_error.py checks it), but it keeps every float tensor of
both graphs for all batches in memory and saves each one as an extra output: on BC-ResNet-1,
2 batches of 32 four-second clips took 11.4 s and 3.7 GiB more peak memory there, against 2.2 s
and 0.14 GiB here, where only the quantized tensors are fetched, a few clips at a time, and
reduced to two energies each. It also reports a finite SQNR (a cap at float eps) where the
noise is zero; here that is inf.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import BadValueError


def _quantized_activations(int8_graph) -> list[tuple[str, str]]:
    """(float tensor, its dequantized copy) for every activation the QDQ graph quantizes;
    weights and biases (initializers) are left out."""
    initializers = {init.name for init in int8_graph.initializer}
    dequantized = {
        n.input[0]: n.output[0] for n in int8_graph.node if n.op_type == "DequantizeLinear"
    }
    pairs = []
    for node in int8_graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers:
            dq = dequantized.get(node.output[0])
            if dq is not None:
                pairs.append((node.input[0], dq))
    return pairs


def _with_outputs(model, names: Iterable[str]):
    """Copy of `model` that also returns the tensors `names` (float32, shape left open)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return model


def sqnr_db(signal_sq: float, noise_sq: float) -> float:
    """10 log10(signal energy / noise energy); inf when the noise is zero."""
    if noise_sq == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal_sq, np.finfo(np.float64).tiny) / noise_sq)


def activation_sqnr(
    float_path: str | Path,
    int8_path: str | Path,
    batches: list[np.ndarray],
    input_name: str = "features",
    chunk: int = 4,
) -> list[dict[str, Any]]:
    """SQNR in dB of each activation the int8 model quantizes (the error accumulated up to it,
    after its own rounding), in the float graph's order, and last of the logits.

    Rows: `tensor`, `op` (the float graph's producer, `input` for the model input), `sqnr_db`.
    `float_path` is the float ONNX given to `quantize_onnx`; its pre-processed form (where the
    int8 tensor names come from) is rebuilt here. Batches run `chunk` clips at a time to bound
    the memory of the extra outputs. Both graphs run unoptimised (Q/DQ as separate ops), which
    keeps every tensor name and matches the fused integer kernels up to float rounding."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise BadValueError("activation_sqnr needs at least one batch of features")
    if chunk < 1:
        raise BadValueError(f"chunk must be >= 1, given {chunk}")
    int8_model = onnx.load(str(int8_path))
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
        float_model = onnx.load(str(pre))
    producers = {out: n.op_type for n in float_model.graph.node for out in n.output}
    producers[input_name] = "input"
    order = {out: i for i, n in enumerate(float_model.graph.node) for out in n.output}
    order[input_name] = -1
    pairs = [(f, q) for f, q in _quantized_activations(int8_model.graph) if f in producers]
    pairs.sort(key=lambda pair: order[pair[0]])
    logits = float_model.graph.output[0].name
    if int8_model.graph.output[0].name != logits:
        raise BadValueError(
            f"{int8_path}: output {int8_model.graph.output[0].name!r} is not the float model's "
            f"{logits!r}; was it quantized from {float_path}?"
        )
    signal, noise = _error_energies(
        float_model, int8_model, pairs, logits, batches, input_name, chunk
    )
    rows = [
        {"tensor": f, "op": producers[f], "sqnr_db": sqnr_db(signal[f], noise[f])} for f, _ in pairs
    ]
    rows.append(
        {"tensor": logits, "op": "logits", "sqnr_db": sqnr_db(signal[logits], noise[logits])}
    )
    return rows


def _error_energies(
    float_model: Any,
    int8_model: Any,
    pairs: list[tuple[str, str]],
    logits: str,
    batches: list[np.ndarray],
    input_name: str,
    chunk: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """(signal energy, error energy) per float tensor name over the batches."""
    import onnxruntime as ort

    float_names = [f for f, _ in pairs if f != input_name] + [logits]
    int8_names = [q for _, q in pairs] + [logits]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep names
    providers = ["CPUExecutionProvider"]
    fsess = ort.InferenceSession(
        _with_outputs(float_model, float_names).SerializeToString(), options, providers=providers
    )
    qsess = ort.InferenceSession(
        _with_outputs(int8_model, int8_names).SerializeToString(), options, providers=providers
    )
    keys = [f for f, _ in pairs] + [logits]
    signal = dict.fromkeys(keys, 0.0)
    noise = dict.fromkeys(keys, 0.0)
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float32)
        for start in range(0, len(batch), chunk):
            x = batch[start : start + chunk]
            fvals = dict(zip(float_names, fsess.run(float_names, {input_name: x})))
            fvals[input_name] = x
            qvals = dict(zip(int8_names, qsess.run(int8_names, {input_name: x})))
            for f, q in [*pairs, (logits, logits)]:
                ref = fvals[f].astype(np.float64)
                signal[f] += float(np.square(ref).sum())
                noise[f] += float(np.square(ref - qvals[q]).sum())
    return signal, noise


def format_sqnr(rows: list[dict[str, Any]], worst: int = 5) -> str:
    """The logits' SQNR and the `worst` lowest-SQNR activations, one per line."""
    logits = rows[-1]
    lines = [f"logits SQNR {logits['sqnr_db']:.1f} dB; lowest activations:"]
    for row in sorted(rows[:-1], key=lambda r: r["sqnr_db"])[:worst]:
        lines.append(f"    {row['sqnr_db']:6.1f} dB  {row['op']:20s} {row['tensor']}")
    return "\n".join(lines)


__all__ = ["activation_sqnr", "format_sqnr", "sqnr_db"]
