"""Where float and int8 (onnxruntime QDQ) inference time goes, per operator type, 1 thread.

For each student (random weights, as in `quant_latency.py`, or a float ONNX given with `--onnx`)
it quantizes with `distill.deploy.int8.quantize_onnx` (the deployment default, or every conv with
`--all-convs`), profiles both graphs in the same run with onnxruntime's per-node profiler and
prints a table of milliseconds per run by operator type, float beside int8, with the totals and
their ratio. onnxruntime names operators after its own graph rewrites, so int8 convolutions show
as QLinearConv and the NCHWc layout conversions as ReorderInput / ReorderOutput.

Usage: python benchmarks/quant_profile.py [--students bc_resnet1,tc_resnet8] [--frames 401]
       python benchmarks/quant_profile.py --onnx RUN/export/student_float.onnx --batch 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from quant_latency import random_student

from distill.cost import onnx_op_profile
from distill.deploy.int8 import quantize_onnx


def profile_table(src: Path, int8: Path, frames: int, batch: int, runs: int) -> str:
    """Markdown: ms per run by operator type for the float and int8 graphs, and the totals."""
    shape = (1, 40, frames)
    f = onnx_op_profile(src, shape, batch, runs=runs)
    q = onnx_op_profile(int8, shape, batch, runs=runs)
    ops = sorted(set(f) | set(q), key=lambda op: -(f.get(op, 0.0) + q.get(op, 0.0)))
    lines = [
        f"\n{src.name}, batch {batch}, {frames} frames, 1 thread, ms per run (kernel time)",
        "| operator | float | int8 |",
        "|---|---|---|",
    ]
    tf, tq = sum(f.values()), sum(q.values())
    for op in ops:
        if max(f.get(op, 0.0), q.get(op, 0.0)) < 0.005 * tf:
            continue  # below half a percent of the float total in both graphs
        cells = [f"{d[op]:.3f}" if op in d else "-" for d in (f, q)]
        lines.append(f"| {op} | {cells[0]} | {cells[1]} |")
    lines.append(f"| **total** | **{tf:.3f}** | **{tq:.3f}** (float/int8 {tf / tq:.2f}x) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="bc_resnet1,tc_resnet8")
    parser.add_argument("--onnx", default=None, help="a float ONNX to profile instead")
    parser.add_argument("--frames", type=int, default=401)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--all-convs", action="store_true", help="quantize every conv (default: deployment path)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((16, 40, args.frames)).astype(np.float32) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.onnx:
            sources = [Path(args.onnx)]
        else:
            names = args.students.split(",")
            sources = [random_student(n, args.frames, tmp / f"{n}.onnx") for n in names]
        for src in sources:
            int8 = tmp / f"{src.stem}_int8.onnx"
            quantize_onnx(src, int8, calib, keep_slow_convs_float=not args.all_convs)
            print(profile_table(src, int8, args.frames, args.batch, args.runs), flush=True)


if __name__ == "__main__":
    main()
