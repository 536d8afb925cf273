"""Where a LiteRT int8 model loses precision: per-tensor signal-to-quantization-noise ratio
(SQNR) of a full-integer `.tflite` against the float `.tflite` it was quantized from, the LiteRT
counterpart of `distill.deploy.int8_error` (same rows, same `format_sqnr`).

Both files run in LiteRT's reference kernels (no XNNPACK delegate, every intermediate tensor
kept), so each op's output can be read; XNNPACK's int8 kernels may round the last bit
differently, which moves the numbers by far less than the differences this report is for. The
two graphs are matched op by op: the int8 graph is the float graph with QUANTIZE and DEQUANTIZE
ops added, as ai-edge-quantizer writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill.deploy import litert_io
from distill.deploy.int8_error import sqnr_db
from distill.errors import BadValueError

QUANTIZED = (np.dtype(np.int8), np.dtype(np.int16))  # integer activation tensors
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


def _dequantized(it, index: int, details: dict[int, dict]) -> np.ndarray:
    value = it.get_tensor(index)
    if value.dtype in QUANTIZED:
        scale, zero = details[index]["quantization"]
        return (value.astype(np.float64) - zero) * scale
    return value.astype(np.float64)


def _pairs(float_it, int8_it, int8_path: str | Path, float_path: str | Path) -> list[tuple]:
    """(op name, float output index, int8 output index) of every op whose int8 output is an
    integer tensor, plus ("input", graph input, its QUANTIZE output) when the input is
    quantized inside the graph."""
    float_ops = float_it._get_ops_details()
    int8_ops = int8_it._get_ops_details()
    inner = [op for op in int8_ops if op["op_name"] not in BOUNDARY_OPS]
    if [op["op_name"] for op in inner] != [op["op_name"] for op in float_ops]:
        raise BadValueError(
            f"{int8_path} does not match {float_path} op by op (besides QUANTIZE/DEQUANTIZE): "
            "was it quantized from that float model?"
        )
    details = {d["index"]: d for d in int8_it.get_tensor_details()}
    pairs = []
    graph_input = int(int8_it.get_input_details()[0]["index"])
    float_input = int(float_it.get_input_details()[0]["index"])
    for op in int8_ops:
        if op["op_name"] == "QUANTIZE" and int(op["inputs"][0]) == graph_input:
            pairs.append(("input", float_input, int(op["outputs"][0])))
    for f_op, q_op in zip(float_ops, inner):
        out = int(q_op["outputs"][0])
        if np.dtype(details[out]["dtype"]) in QUANTIZED:
            pairs.append((q_op["op_name"], int(f_op["outputs"][0]), out))
    return pairs


def tflite_activation_sqnr(
    float_path: str | Path, int8_path: str | Path, batches: list[np.ndarray]
) -> list[dict[str, Any]]:
    """SQNR in dB of each activation the int8 `.tflite` quantizes (the error accumulated up to
    it, after its own rounding), in execution order, and last of the logits. Rows: `tensor` (the
    float file's tensor name), `op` (its producer, `input` for the model input), `sqnr_db`.
    `batches` are (B, F, T) feature batches, run clip by clip (the files' batch is 1)."""
    clips = litert_io.clips(batches)
    if not clips:
        raise BadValueError("tflite_activation_sqnr needs at least one clip of features")
    f_it, q_it = (litert_io.interpreter(p, debug=True) for p in (float_path, int8_path))
    pairs = _pairs(f_it, q_it, int8_path, float_path)
    f_names = {d["index"]: d["name"] for d in f_it.get_tensor_details()}
    q_details = {d["index"]: d for d in q_it.get_tensor_details()}
    f_in, q_in = f_it.get_input_details()[0], q_it.get_input_details()[0]
    f_out, q_out = f_it.get_output_details()[0], q_it.get_output_details()[0]
    signal, noise = np.zeros(len(pairs) + 1), np.zeros(len(pairs) + 1)
    for clip in clips:
        if tuple(clip.shape) != tuple(f_in["shape"]):
            raise BadValueError(
                f"{float_path} takes features of shape {tuple(f_in['shape'])}, given {clip.shape}"
            )
        f_it.set_tensor(f_in["index"], clip)
        q_it.set_tensor(q_in["index"], litert_io.to_input(clip, q_in))
        f_it.invoke()
        q_it.invoke()
        for k, (_, f_index, q_index) in enumerate(pairs):
            ref = f_it.get_tensor(f_index).astype(np.float64)
            signal[k] += float(np.square(ref).sum())
            noise[k] += float(np.square(ref - _dequantized(q_it, q_index, q_details)).sum())
        ref = f_it.get_tensor(f_out["index"]).astype(np.float64)
        got = litert_io.from_output(q_it.get_tensor(q_out["index"]), q_out).astype(np.float64)
        signal[-1] += float(np.square(ref).sum())
        noise[-1] += float(np.square(ref - got).sum())
    rows = [
        {"tensor": f_names[f_index], "op": op, "sqnr_db": sqnr_db(signal[k], noise[k])}
        for k, (op, f_index, _) in enumerate(pairs)
    ]
    rows.append({"tensor": f_names[f_out["index"]], "op": "logits",
                 "sqnr_db": sqnr_db(signal[-1], noise[-1])})  # fmt: skip
    return rows


__all__ = ["tflite_activation_sqnr"]
