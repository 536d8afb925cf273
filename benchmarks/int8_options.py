"""Latency of onnxruntime int8 quantization options against float, side by side, 1 thread.

For one student (random weights and BatchNorm statistics, or a float ONNX you give) at a given
number of frames, writes the int8 model under each option of `distill.quant.int8.quantize_onnx`
and prints median latency at batch 1 and 32 with the speed-up over float, measured in one run
and repeated `--repeats` times (the float model is re-timed before each option's row).
Usage: python benchmarks/int8_options.py [--student tc_resnet8] [--frames 401] [--onnx PATH]
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

OPTIONS = {  # name -> quantize_onnx keyword arguments (the first is the deployment default)
    "QDQ, per-channel s8 weights (default)": {},
    "QDQ, every conv quantized": {"keep_slow_convs_float": False},
    "QOperator (QLinearConv)": {"quant_format": "qoperator"},
    "QDQ, per-tensor weights": {"per_channel": False},
    "QDQ, u8 weights": {"weight_type": "uint8"},
    "QDQ, 7-bit reduce_range": {"reduce_range": True},
}


def random_student(name: str, frames: int, path: Path) -> Path:
    """Float ONNX of a student with random weights and BatchNorm statistics."""
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return export_float(model, path, 40, frames, 18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="tc_resnet8")
    parser.add_argument("--frames", type=int, default=401)
    parser.add_argument("--onnx", default=None, help="a float student ONNX (features in)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    calib = [3 * rng.standard_normal((8, 40, args.frames)).astype(np.float32) for _ in range(4)]
    shape = (1, 40, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        src = (
            Path(args.onnx)
            if args.onnx
            else random_student(args.student, args.frames, Path(tmp) / "float.onnx")
        )
        paths = {}
        for k, (name, options) in enumerate(OPTIONS.items()):
            paths[name] = Path(tmp) / f"int8_{k}.onnx"
            quantize_onnx(src, paths[name], calib, **options)
        print(f"{src if args.onnx else args.student}, {args.frames} frames, 1 thread, median ms")
        print("| option | size KB | b1 ms | b1 speed-up | b32 ms | b32 speed-up |")
        print("|---|---|---|---|---|---|")
        for rep in range(args.repeats):
            for name, path in paths.items():
                cells = [name, f"{path.stat().st_size / 1024:.0f}"]
                for batch in (1, 32):
                    runs = args.runs if batch == 1 else max(args.runs // 4, 20)
                    ref = onnx_latency(src, shape, batch, threads=1, runs=runs)
                    ms = onnx_latency(path, shape, batch, threads=1, runs=runs)
                    cells += [f"{ms:.3f}", f"{ref / ms:.2f}x"]
                print("| " + " | ".join(cells) + " |", flush=True)
            if rep + 1 < args.repeats:
                print("| (repeat) | | | | | |")


if __name__ == "__main__":
    main()
