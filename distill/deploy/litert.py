"""LiteRT (TFLite) export of a run's student: float and full-integer int8 `.tflite`, checked
in the LiteRT interpreter.

The toolchain is the optional extra `litert` and stays behind this module: litert-torch
converts the eval-mode student (torch.export, static shapes: batch 1 and the recipe's frames),
after the equivalent rewrites of `distill.deploy.litert_patterns` (patterns XNNPACK runs slowly
in int8), to a float flatbuffer; ai-edge-quantizer's static recipe quantizes every operator it
supports to int8 (weights int8 symmetric per channel, activations int8 asymmetric per tensor,
min-max ranges over all calibration clips: the smallest minimum and largest maximum each tensor
reaches, not ai-edge-quantizer's default moving average of per-clip extremes, which on clips fed
one at a time gives a typical clip's range and saturates the larger ones; or, with
`calibration_method="percentile"`, each range clipped at a percentile of the tensor's values:
`distill.deploy.litert_calibration`); ai-edge-litert's
interpreter (XNNPACK delegate) runs both. The int8 file takes and returns float tensors (a
QUANTIZE op after the input, a DEQUANTIZE before the output) unless `int8_io`, which makes input
and output int8 as microcontroller runtimes expect; `run_tflite` quantizes and dequantizes at the
boundary either way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.deploy.litert_calibration import (
    DEFAULT_PERCENTILE,
    SIGNATURE,
    activation_ranges,
)
from distill.deploy.litert_io import clips as _clips
from distill.deploy.litert_io import from_output as _from_output
from distill.deploy.litert_io import interpreter as _interpreter
from distill.deploy.litert_io import to_input as _to_input
from distill.errors import BadValueError, MissingExtraError, MissingFileError, UsageError
from distill.files import atomic_path

MODULES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")


def missing_modules() -> list[str]:
    """The toolchain modules that are not installed (empty when LiteRT export works)."""
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def require_litert() -> None:
    """Raise MissingExtraError naming the missing modules when the `litert` extra is not
    installed."""
    missing = missing_modules()
    if missing:
        raise MissingExtraError(
            "LiteRT export needs the optional `litert` extra "
            "(pip install 'temporal-distill[litert]'); "
            f"missing module(s): {', '.join(missing)}"
        )


def convert_float(
    student: nn.Module,
    path: str | Path,
    n_features: int,
    frames: int,
    rewrite: bool = True,
    for_int8: bool = False,
) -> Path:
    """Write the bare student as a float `.tflite` (features (1, F, T) -> logits (1, C)); with
    `rewrite` (default) the patterns XNNPACK runs slowly in int8 are rewritten first
    (`distill.deploy.litert_patterns`; the same function, checked); `for_int8`: the graph to
    quantize, which may differ from the float file's where int8 and float kernels disagree."""
    return _write_float(student, path, n_features, frames, rewrite, for_int8)[0]


def _write_float(
    student: nn.Module,
    path: str | Path,
    n_features: int,
    frames: int,
    rewrite: bool,
    for_int8: bool,
) -> tuple[Path, list[str]]:
    """`convert_float`, and the rewrites it made ("<layer>: <kind>" lines)."""
    require_litert()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    student = student.eval()
    if any(m._forward_hooks or m._forward_pre_hooks for m in student.modules()):
        raise UsageError("refusing to export a student that still carries forward hooks")
    rewrites: list[str] = []
    if rewrite:
        from distill.deploy.litert_patterns import xnnpack_rewrite

        student, rewrites = xnnpack_rewrite(student, n_features, frames, for_int8)
    content = convert_module(student, (torch.zeros(1, n_features, frames),))
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return path, rewrites


def convert_module(
    module: nn.Module,
    args: tuple,
    kwargs: dict[str, torch.Tensor] | None = None,
    short_names: bool = True,
) -> bytes:
    """The float flatbuffer of an eval-mode module for these example inputs (static shapes),
    tensors named `t<index>` (with `short_names=False`, litert-torch's module-path names);
    keyword inputs keep their names in the signature."""
    require_litert()
    import litert_torch

    shown = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's pytree deprecations
            model = litert_torch.convert(module.eval(), args, kwargs)
            content = model.model_content()
    finally:
        litert_torch.config.show_progress = shown
    return short_tensor_names(content) if short_names else content


def short_tensor_names(model_bytes: bytes) -> bytes:
    """The flatbuffer with tensor names `t<index>` and no description: litert-torch names each
    tensor by its module path, which made up 60 % of a BC-ResNet-1 file."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    model.description = None
    for graph in model.subgraphs:
        for i, tensor in enumerate(graph.tensors):
            tensor.name = f"t{i}"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_int8(
    float_path: str | Path,
    int8_path: str | Path,
    calibration: list[np.ndarray],
    int8_io: bool = False,
    calibration_method: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
) -> Path:
    """Write the full-integer int8 model of `float_path`, activation ranges from the
    `calibration` feature batches by `calibration_method` (`minmax`, or `percentile`: each
    tensor clipped at that percentile of its values; `distill.deploy.litert_calibration`);
    float input/output unless `int8_io`."""
    require_litert()
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    clips = _clips(calibration)
    if not clips:
        raise BadValueError("int8 calibration needs at least one clip; got none")
    if not Path(float_path).is_file():
        raise MissingFileError(f"float LiteRT model {float_path} does not exist")
    q = quantizer.Quantizer(str(float_path))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    if not int8_io:
        for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            q.update_quantization_recipe(".*", op, algorithm_key=AlgorithmName.NO_QUANTIZE)
    name = _input_name(float_path)
    inputs = [{name: clip} for clip in clips]
    ranges = activation_ranges(q, float_path, inputs, calibration_method, percentile)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # progress-bar chatter
        result = q.quantize(ranges, enable_progress_report=False)
    int8_path = Path(int8_path)
    with atomic_path(int8_path) as tmp:
        tmp.write_bytes(short_tensor_names(bytes(result.quantized_model)))
    return int8_path


def interpreter(path: str | Path, threads: int = 1):  # -> ai_edge_litert Interpreter
    """A LiteRT interpreter on `threads` CPU threads (XNNPACK delegate), tensors allocated."""
    return _interpreter(path, threads)


def _input_name(path: str | Path) -> str:
    return interpreter(path).get_signature_list()[SIGNATURE]["inputs"][0]


def io_types(path: str | Path) -> dict[str, str]:
    """Input and output dtypes of a `.tflite` (float32 or int8)."""
    it = interpreter(path)
    return {
        "input": np.dtype(it.get_input_details()[0]["dtype"]).name,
        "output": np.dtype(it.get_output_details()[0]["dtype"]).name,
    }


def run_tflite(path: str | Path, feats: list[np.ndarray], threads: int = 1) -> np.ndarray:
    """Logits (float) of a `.tflite` student over (B, F, T) feature batches, clip by clip."""
    it = interpreter(path, threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    logits = []
    for clip in _clips(feats):
        if tuple(clip.shape) != tuple(inp["shape"]):
            raise BadValueError(
                f"{path} takes features of shape {tuple(inp['shape'])}, given {clip.shape}"
            )
        it.set_tensor(inp["index"], _to_input(clip, inp))
        it.invoke()
        logits.append(_from_output(it.get_tensor(out["index"]), out))
    return np.concatenate(logits)


def tflite_latency(
    path: str | Path, batch: int = 1, threads: int = 1, warmup: int = 10, runs: int = 100
) -> float | None:
    """Median milliseconds of one invoke on a random input; None when `batch` is not the file's
    batch (static shapes: litert-torch 0.10 fails to convert a dynamic batch, and XNNPACK cannot
    reshape a batch-1 graph to another batch)."""
    if runs < 1 or warmup < 0:
        raise BadValueError(f"need runs >= 1 and warmup >= 0; got {runs}, {warmup}")
    it = interpreter(path, threads)
    inp = it.get_input_details()[0]
    if int(inp["shape"][0]) != batch:
        return None
    out = it.get_output_details()[0]["index"]
    x = _to_input(np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32), inp)
    times = []
    for i in range(warmup + runs):  # input in, invoke, output out: what onnxruntime's run times
        start = time.perf_counter()
        it.set_tensor(inp["index"], x)
        it.invoke()
        it.get_tensor(out)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


__all__ = [
    "convert_float",
    "convert_module",
    "interpreter",
    "io_types",
    "missing_modules",
    "quantize_int8",
    "require_litert",
    "run_tflite",
    "short_tensor_names",
    "tflite_latency",
]
