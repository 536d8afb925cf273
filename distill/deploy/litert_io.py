"""Feature clips in and logits out of a batch-1 `.tflite`: the float <-> int8 conversions at the
file's boundary, shared by the LiteRT export (`distill.deploy.litert`) and its error report
(`distill.deploy.litert_error`). Plain numpy; no LiteRT import."""

from __future__ import annotations

import numpy as np


def clips(batches: list[np.ndarray]) -> list[np.ndarray]:
    """(B, F, T) batches as a list of (1, F, T) float32 clips (the flatbuffer's batch is 1)."""
    return [np.asarray(b[i : i + 1], dtype=np.float32) for b in batches for i in range(len(b))]


def to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """`x` as the input tensor described by `detail` wants it: cast, or quantized when int8."""
    if detail["dtype"] != np.int8:
        return x.astype(detail["dtype"])
    scale, zero = detail["quantization"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """The output tensor described by `detail` as float32 (dequantized when int8)."""
    if detail["dtype"] != np.int8:
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


__all__ = ["clips", "from_output", "to_input"]
