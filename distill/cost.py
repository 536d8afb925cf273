"""Latency of an ONNX model in onnxruntime on a fixed number of CPU threads."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from distill.errors import BadValueError, MissingFileError


def session(
    path: str | Path, threads: int = 1, profile_prefix: str | None = None
):  # -> onnxruntime.InferenceSession
    """A CPU onnxruntime session with `threads` intra-op threads and one inter-op thread;
    with `profile_prefix`, onnxruntime's per-node profiling is on and writes there."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise MissingFileError(f"ONNX model {path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _warm_session(
    path: str | Path,
    input_shape: Sequence[int],
    batch: int,
    threads: int,
    warmup: int,
    runs: int,
    profile_prefix: str | None = None,
) -> tuple[object, str, np.ndarray]:
    """A session that has run `warmup` times, its input name and the random input."""
    if batch < 1 or runs < 1 or warmup < 0:
        raise BadValueError(
            f"need batch >= 1, runs >= 1, warmup >= 0; got {batch}, {runs}, {warmup}"
        )
    sess = session(path, threads, profile_prefix)
    name = sess.get_inputs()[0].name
    shape = (batch, *[int(d) for d in input_shape[1:]])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    return sess, name, x


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
    sess, name, x = _warm_session(path, input_shape, batch, threads, warmup, runs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def onnx_op_profile(
    path: str | Path,
    input_shape: Sequence[int],
    batch: int,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 20,
) -> dict[str, float]:
    """Mean milliseconds per run spent in each operator type (onnxruntime's kernel times, as
    it names the ops after its graph optimisations: QLinearConv, ReorderInput, ...)."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "profile")
        sess, name, x = _warm_session(path, input_shape, batch, threads, warmup, runs, prefix)
        for _ in range(runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    runs_seen = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    if len(runs_seen) != warmup + runs:
        raise RuntimeError(
            f"onnxruntime profiled {len(runs_seen)} runs of {path}, expected {warmup + runs}"
        )
    start = runs_seen[warmup]["ts"]  # the warm-up runs' events are dropped
    per_op: Counter = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            per_op[e["args"]["op_name"]] += e["dur"]
    return {op: us / runs / 1000.0 for op, us in per_op.most_common()}


__all__ = ["onnx_latency", "onnx_op_profile", "session"]
