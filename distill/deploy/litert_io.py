"""Opening a `.tflite` in the LiteRT interpreter, and feature clips in and logits out of a
batch-1 file (the float <-> int8 conversions at its boundary): shared by the LiteRT export
(`distill.deploy.litert`) and its error report (`distill.deploy.litert_error`). LiteRT is
imported only when an interpreter is opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.errors import MissingExtraError, MissingFileError


def interpreter(path: str | Path, threads: int = 1, debug: bool = False):  # -> Interpreter
    """A LiteRT interpreter on `path`, tensors allocated: on `threads` CPU threads (XNNPACK
    delegate), or with `debug` on the reference kernels keeping every intermediate tensor."""
    if not Path(path).is_file():
        raise MissingFileError(f"LiteRT model {path} does not exist")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as err:
        raise MissingExtraError(
            f"running {path} needs the optional `litert` extra "
            "(pip install 'temporal-distill[litert]'); missing module: ai_edge_litert"
        ) from err
    if debug:
        it = Interpreter(
            model_path=str(path),
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    else:
        it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


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


__all__ = ["clips", "from_output", "interpreter", "to_input"]
