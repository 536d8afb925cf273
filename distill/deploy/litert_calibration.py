"""Activation ranges for LiteRT int8: min-max over all calibration clips, clipped at a
percentile of each tensor's values, or the range of least int8 error per tensor.

`min_max_ranges` runs the float `.tflite` on every calibration input (ai-edge-quantizer's
calibrator) and keeps, per tensor, the smallest minimum and the largest maximum it reaches.
`percentile_ranges` then runs the inputs again with every intermediate tensor kept, counts each
tensor's values in `HISTOGRAM_BINS` equal bins over its min-max range, and narrows the range to
the values from the (100 - p)th to the p-th percentile: one loud frame no longer sets the int8
step of a tensor that 8 s of quieter frames share. Zero stays inside every range (int8 must
represent it exactly). Both return ai-edge-quantizer's QSV dictionary (tensor name ->
{"min", "max"}), which `Quantizer.quantize` takes.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import BadValueError

SIGNATURE = "serving_default"  # the one signature litert-torch writes
CALIBRATION_METHODS = ("minmax", "percentile", "mse")
INT8_LEVELS = 256
MSE_CANDIDATES = 64  # candidate ends per side of a range, at quantiles of the values
DEFAULT_PERCENTILE = 99.999  # chosen on training-split agreement (docs/qat_export.md)
HISTOGRAM_BINS = 2048


def check_calibration(method: str, percentile: float) -> None:
    """Raise BadValueError for an unknown method or a percentile outside (50, 100]."""
    if method not in CALIBRATION_METHODS:
        raise BadValueError(
            f"LiteRT int8 calibration method {method!r}: expected one of {CALIBRATION_METHODS}"
        )
    if not 50.0 < percentile <= 100.0:
        raise BadValueError(f"percentile must be in (50, 100], given {percentile}")


def min_max_ranges(q: Any, float_path: str | Path, inputs: list[dict[str, np.ndarray]]) -> dict:
    """Activation ranges of the float model `float_path` for the recipe of quantizer `q`: per
    tensor the minimum and maximum over every input in `inputs` (one signature call each)."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    recipes = recipe_manager.RecipeManager()
    recipes.load_quantization_recipe(q.get_quantization_recipe())
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # preserve-all-tensors and progress-bar chatter
        calib = calibrator.Calibrator(
            Path(float_path).read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update
        )
        calib.calibrate({SIGNATURE: inputs}, recipes)
    return calib.get_model_qsvs()


def tensor_histograms(
    float_path: str | Path,
    inputs: list[dict[str, np.ndarray]],
    ranges: dict,
    bins: int = HISTOGRAM_BINS,
) -> dict[str, np.ndarray]:
    """Per tensor of `ranges`, the counts of its values over all `inputs` in `bins` equal bins
    spanning its min-max range (tensors with an empty range are left out)."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as tiu

    spans = {name: _span(qsv) for name, qsv in ranges.items()}
    spans = {name: (lo, hi) for name, (lo, hi) in spans.items() if hi > lo}
    counts = {name: np.zeros(bins, dtype=np.int64) for name in spans}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preserve_all_tensors is "for debugging"
        it = tiu.create_tfl_interpreter(
            str(float_path), use_xnnpack=True, num_threads=1, preserve_all_tensors=True
        )
    subgraph = tiu.get_signature_main_subgraph_index(it, SIGNATURE)
    for data in inputs:
        tiu.invoke_interpreter_signature(it, data, SIGNATURE)
        content = tiu.get_tensor_name_to_content_map(it, subgraph)
        for name, (lo, hi) in spans.items():
            if name in content:
                values = np.asarray(content[name], dtype=np.float64).ravel()
                counts[name] += np.histogram(values, bins=bins, range=(lo, hi))[0]
    return counts


def clipped_range(
    counts: np.ndarray, lo: float, hi: float, percentile: float
) -> tuple[float, float]:
    """The range from the (100 - `percentile`)th to the `percentile`-th percentile of values
    counted in equal bins over [lo, hi] (each end at the outer edge of its bin), widened to
    hold 0."""
    total = counts.sum()
    if total == 0 or percentile >= 100.0:
        return min(lo, 0.0), max(hi, 0.0)
    width = (hi - lo) / len(counts)
    cdf = np.cumsum(counts) / total
    share = percentile / 100.0
    low = lo + width * int(np.searchsorted(cdf, 1.0 - share, side="right"))
    high = lo + width * (int(np.searchsorted(cdf, share, side="left")) + 1)
    return min(max(low, lo), 0.0), max(min(high, hi), 0.0)


def mse_range(counts: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The range [low, high] (holding 0) of least estimated int8 error for values counted in
    equal bins over [lo, hi]: per value at a bin centre, (value - nearest end)^2 outside the
    range, step^2 / 12 inside (step = (high - low) / 255); candidate ends at `MSE_CANDIDATES`
    quantiles of the values on each side."""
    total = counts.sum()
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if total == 0 or hi <= lo:
        return lo, hi
    width = (hi - lo) / len(counts)
    centres = lo + width * (np.arange(len(counts)) + 0.5)
    weights = counts / total
    cdf = np.cumsum(weights)
    edges = lo + width * np.arange(len(counts) + 1)
    tails = np.geomspace(0.5, 1e-7, MSE_CANDIDATES)  # share of the values cut off at one end
    top = np.minimum(np.searchsorted(cdf, 1.0 - tails, side="left") + 1, len(counts))
    bottom = np.minimum(np.searchsorted(cdf, tails, side="right"), len(counts))
    highs = np.unique(np.r_[edges[top], hi])  # hi >= 0 and lo <= 0: neither set is empty
    lows = np.unique(np.r_[edges[bottom], lo])
    highs, lows = highs[highs >= 0.0], lows[lows <= 0.0]
    low, high = np.meshgrid(lows, highs, indexing="ij")  # (L, H)
    step = (high - low) / (INT8_LEVELS - 1)
    v = centres[None, None, :]
    below = np.clip(low[..., None] - v, 0.0, None)
    above = np.clip(v - high[..., None], 0.0, None)
    inside = (below == 0.0) & (above == 0.0)
    error = (below**2 + above**2 + inside * (step[..., None] ** 2 / 12.0)) @ weights
    i, j = np.unravel_index(int(np.argmin(error)), error.shape)
    return float(low[i, j]), float(high[i, j])


def mse_ranges(q: Any, float_path: str | Path, inputs: list[dict[str, np.ndarray]]) -> dict:
    """`min_max_ranges`, each tensor's range then narrowed to its `mse_range`."""
    return _narrowed_ranges(q, float_path, inputs, mse_range)


def percentile_ranges(
    q: Any, float_path: str | Path, inputs: list[dict[str, np.ndarray]], percentile: float
) -> dict:
    """`min_max_ranges`, each tensor's range then narrowed to `clipped_range` of its values."""
    check_calibration("percentile", percentile)
    return _narrowed_ranges(
        q, float_path, inputs, lambda counts, lo, hi: clipped_range(counts, lo, hi, percentile)
    )


def _narrowed_ranges(
    q: Any,
    float_path: str | Path,
    inputs: list[dict[str, np.ndarray]],
    narrow: Callable[[np.ndarray, float, float], tuple[float, float]],
) -> dict:
    """`min_max_ranges`, each tensor with a histogram narrowed to `narrow(counts, lo, hi)`, then
    made consistent where operators share a scale (`same_scale_ranges`)."""
    ranges = min_max_ranges(q, float_path, inputs)
    counts = tensor_histograms(float_path, inputs, ranges)
    narrowed = {
        name: _with_span(qsv, *narrow(counts[name], *_span(qsv))) if name in counts else qsv
        for name, qsv in ranges.items()
    }
    return same_scale_ranges(float_path, narrowed)


def same_scale_ranges(float_path: str | Path, ranges: dict) -> dict:
    """`ranges` made consistent where int8 operators share a scale, in execution order: the
    output of an operator that keeps its input's scale (SLICE, RESHAPE, PAD, ...) gets its
    input's range, and the output of one whose inputs take its scale (CONCATENATION, ...) the
    union of its inputs' ranges, as min-max ranges are by construction. Clipped one by one,
    they differ, and the quantizer adds a requantizing operator at each such edge (40 after
    DS-CNN-S's slices)."""
    from ai_edge_quantizer.algorithms.utils.common_utils import OpQuantConstraint
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb
    from ai_edge_quantizer.utils.constrained_ops_utils import get_constrained_op_list

    same = set(get_constrained_op_list(OpQuantConstraint.SAME_AS_INPUT_SCALE))
    joined = set(get_constrained_op_list(OpQuantConstraint.SAME_AS_OUTPUT_SCALE))
    model = fb.read_model(Path(float_path).read_bytes())
    shared = dict(ranges)
    for graph in model.subgraphs:
        names = [_name(t.name) for t in graph.tensors]
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = fb.TFL_OP_CODE_TO_NAME.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            inputs = [names[i] if i >= 0 else None for i in op.inputs]
            known = [name for name in inputs if name in shared]
            if kind in same and inputs and inputs[0] in shared:
                span = _span(shared[inputs[0]])
            elif kind in joined and known:
                spans = [_span(shared[name]) for name in known]
                span = (min(lo for lo, _ in spans), max(hi for _, hi in spans))
            else:
                continue
            for out in op.outputs:
                if names[out] in shared:
                    shared[names[out]] = _with_span(shared[names[out]], *span)
    return shared


def _name(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _with_span(qsv: dict, low: float, high: float) -> dict:
    return {**qsv, "min": np.full_like(qsv["min"], low), "max": np.full_like(qsv["max"], high)}


def activation_ranges(
    q: Any,
    float_path: str | Path,
    inputs: list[dict[str, np.ndarray]],
    method: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
) -> dict:
    """The QSVs of `method` (`minmax`, `percentile` or `mse`) for quantizer `q`."""
    check_calibration(method, percentile)
    if method == "minmax":
        return min_max_ranges(q, float_path, inputs)
    if method == "mse":
        return mse_ranges(q, float_path, inputs)
    return percentile_ranges(q, float_path, inputs, percentile)


def _span(qsv: dict) -> tuple[float, float]:
    return float(np.min(qsv["min"])), float(np.max(qsv["max"]))


__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_PERCENTILE",
    "activation_ranges",
    "check_calibration",
    "clipped_range",
    "min_max_ranges",
    "mse_range",
    "mse_ranges",
    "percentile_ranges",
    "tensor_histograms",
]
