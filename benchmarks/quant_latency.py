"""Float vs int8 (onnxruntime QDQ) latency of TC-ResNet8, BC-ResNet-1 and GRU, 1 thread.

Random weights (latency does not depend on them); random BatchNorm statistics; calibration on
random features. Prints one line per student with the float/int8 speed-up at batch 1 and 32.
Usage: python benchmarks/quant_latency.py [--runs 200] [--frames 101]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import students
from distill.quant.artifacts import export_float
from distill.quant.int8 import quantize_onnx
from distill.quant.latency import onnx_latency

STUDENTS = ("tc_resnet8", "bc_resnet1", "gru")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--frames", type=int, default=101)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((16, 40, args.frames)).astype(np.float32) for _ in range(4)]
    print(
        f"{'student':<12s} {'float b1':>9s} {'int8 b1':>9s} {'x b1':>6s} "
        f"{'float b32':>10s} {'int8 b32':>9s} {'x b32':>6s}  (ms, 1 thread, median)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in STUDENTS:
            torch.manual_seed(0)
            model = students.create(name, num_classes=12, n_features=40).eval()
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.running_mean.normal_(0, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
            f_path = export_float(model, Path(tmp) / f"{name}.onnx", 40, args.frames, 18)
            q_path = Path(tmp) / f"{name}_int8.onnx"
            quantize_onnx(f_path, q_path, calib)
            shape = (1, 40, args.frames)
            ms = {
                (kind, b): onnx_latency(p, shape, b, threads=1, warmup=args.warmup, runs=args.runs)
                for b in (1, 32)
                for kind, p in (("float", f_path), ("int8", q_path))
            }
            print(
                f"{name:<12s} {ms['float', 1]:9.3f} {ms['int8', 1]:9.3f} "
                f"{ms['float', 1] / ms['int8', 1]:5.2f}x {ms['float', 32]:10.3f} "
                f"{ms['int8', 32]:9.3f} {ms['float', 32] / ms['int8', 32]:5.2f}x"
            )


if __name__ == "__main__":
    main()
