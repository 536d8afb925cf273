"""Latency of an ONNX model in onnxruntime on a fixed number of CPU threads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def session(path: str | Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """A CPU onnxruntime session with `threads` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_latency(
    path: str | Path,
    input_shape: Sequence[int],
    batch: int,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 100,
) -> float:
    """Median milliseconds of one run on a (batch, *input_shape[1:]) random input.

    `input_shape` is the model input shape; its first (batch) entry is replaced by `batch`.
    Warm-up runs are excluded from the median.
    """
    if batch < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"need batch >= 1, runs >= 1, warmup >= 0; got {batch}, {runs}, {warmup}")
    sess = session(path, threads)
    name = sess.get_inputs()[0].name
    shape = (batch, *[int(d) for d in input_shape[1:]])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


__all__ = ["onnx_latency", "session"]
