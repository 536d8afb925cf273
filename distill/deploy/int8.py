"""The deployment int8 path: onnxruntime static quantization (QDQ) of a float student ONNX.

Chosen from measurements (docs/qat_export.md): uint8 per-tensor activations, int8 per-channel
weights (the same scheme the PT2E X86 fake-quant trains for), `quant_pre_process` first,
convolutions with one input channel and depthwise convolutions left float (they ran slower
quantized in onnxruntime on x86), and then only Conv/Gemm/MatMul quantized, since the
element-wise ops around float convs lose accuracy to rounding and gain no integer kernel.
PTQ quantizes the distilled float student; QAT quantizes the QAT-fine-tuned float student
with the same call.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from distill.errors import BadValueError

CONV_GEMM_OPS = ("Conv", "Gemm", "MatMul")  # op types with integer kernels worth the Q/DQ


def stays_float(in_channels: int, groups: int) -> bool:
    """Whether the deployment int8 path keeps a convolution float: one input channel, or
    depthwise / grouped (both ran slower quantized in onnxruntime on x86)."""
    return groups > 1 or in_channels == 1


def excluded_convs(model_path: str | Path) -> list[str]:
    """Names of Conv nodes kept float (`stays_float`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    weights = {init.name: numpy_helper.to_array(init).shape for init in graph.initializer}
    names = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = weights.get(node.input[1])
        in_channels = shape[1] * group if shape is not None else 0  # 0: unknown, not one
        if stays_float(in_channels, group):
            names.append(node.name)
    return names


def resolved_op_types(op_types: list[str] | str | None, excluded: list[str]) -> list[str] | None:
    """The operator types `quantize_onnx` quantizes (None: all), with "auto" resolved by
    whether any conv stays float (`excluded`)."""
    if op_types == "auto":
        return list(CONV_GEMM_OPS) if excluded else None
    return op_types


def _check_op_types(model_path: Path, shown_as: str | Path, op_types: list[str]) -> None:
    """Every name must be an ONNX operator and at least one must occur in the model."""
    import onnx

    present = {node.op_type for node in onnx.load(str(model_path)).graph.node}
    unknown = [op for op in op_types if not onnx.defs.has(op)]
    if unknown or not present.intersection(op_types):
        model_path.unlink(missing_ok=True)
        problem = f"{unknown} are not ONNX operators" if unknown else "none occurs in the model"
        raise BadValueError(
            f"op_types {list(op_types)!r}: {problem}; {shown_as} has {', '.join(sorted(present))}"
        )


class _Reader:
    """onnxruntime CalibrationDataReader over (B, F, T) feature batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._it = iter([{input_name: np.asarray(b, dtype=np.float32)} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def ort_options(quant_format: str, weight_type: str, calibration_method: str) -> tuple:
    """onnxruntime's (QuantFormat, QuantType, CalibrationMethod) for the option names."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    weights = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if quant_format not in formats or weight_type not in weights:
        raise BadValueError(
            f"quant_format must be one of {sorted(formats)} and weight_type one of "
            f"{sorted(weights)}; given {quant_format!r}, {weight_type!r}"
        )
    if calibration_method not in methods:
        raise BadValueError(
            f"calibration_method must be one of {sorted(methods)}; given {calibration_method!r}"
        )
    return formats[quant_format], weights[weight_type], methods[calibration_method]


def quantize_onnx(
    float_path: str | Path,
    int8_path: str | Path,
    calibration: list[np.ndarray],
    input_name: str = "features",
    quant_format: str = "qdq",
    per_channel: bool = True,
    weight_type: str = "int8",
    reduce_range: bool = False,
    keep_slow_convs_float: bool = True,
    calibration_method: str = "minmax",
    op_types: list[str] | str | None = "auto",
) -> list[str]:
    """Write the int8 model of `float_path`; returns the names of convs left float.

    The defaults are the deployment path; the options (`quant_format` qdq | qoperator,
    per-tensor weights, uint8 weights, 7-bit `reduce_range`, quantizing every conv, activation
    ranges from `calibration_method` minmax | percentile | entropy, and `op_types`: the
    operator types to quantize, None for all that onnxruntime can) exist to compare
    alternatives (`benchmarks/quant_latency.py --options`). `op_types="auto"` quantizes
    everything when every conv is int8, and only Conv/Gemm/MatMul when some convs stay float:
    element-wise ops between float convs gain no integer kernel, only Q/DQ time and rounding."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise BadValueError("quantize_onnx needs at least one calibration batch")
    quant_format, weight_type, calibration_method = ort_options(
        quant_format, weight_type, calibration_method
    )
    int8_path = Path(int8_path)
    pre = int8_path.with_name(int8_path.stem + ".pre.onnx")
    quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
    excluded = excluded_convs(pre) if keep_slow_convs_float else []
    if op_types not in ("auto", None):
        _check_op_types(pre, float_path, op_types)
    op_types = resolved_op_types(op_types, excluded)
    reader = _Reader(input_name, calibration)
    CalibrationDataReader.register(_Reader)
    try:
        quantize_static(
            str(pre),
            str(int8_path),
            reader,
            quant_format=quant_format,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=weight_type,
            nodes_to_exclude=excluded,
            calibrate_method=calibration_method,
            op_types_to_quantize=op_types,
        )
    finally:
        pre.unlink(missing_ok=True)
    return excluded


__all__ = [
    "CONV_GEMM_OPS",
    "excluded_convs",
    "quantize_onnx",
    "resolved_op_types",
    "stays_float",
]
