"""Float vs int8 (onnxruntime QDQ) latency of TC-ResNet8, BC-ResNet-1 and GRU, 1 thread.

Random weights (latency does not depend on them); random BatchNorm statistics; calibration on
random features. Prints one line per student with the float/int8 speed-up at batch 1 and 32.
With `--options` it instead compares, for each student (or for a float ONNX given with
`--onnx`), the onnxruntime quantization options of `distill.deploy.int8.quantize_onnx` side by
side, re-timing float before each row, `--repeats` times.

Usage: python benchmarks/quant_latency.py [--runs 200] [--frames 101]
       python benchmarks/quant_latency.py --options --students tc_resnet8 --frames 401
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill import students
from distill.cost import onnx_latency
from distill.deploy.int8 import CONV_GEMM_OPS, quantize_onnx
from distill.deploy.onnx_io import export_float

STUDENTS = ("tc_resnet8", "bc_resnet1", "gru")
OPTIONS = {  # name -> quantize_onnx keyword arguments (the first is the deployment default)
    "QDQ, per-channel s8 weights (default)": {},
    "QDQ, every op type quantized": {"op_types": None},
    "QDQ, every conv quantized": {"keep_slow_convs_float": False},
    "QOperator (QLinearConv)": {"quant_format": "qoperator"},
    "QDQ, per-tensor weights": {"per_channel": False},
    "QDQ, u8 weights": {"weight_type": "uint8"},
    "QDQ, 7-bit reduce_range": {"reduce_range": True},
    "QDQ, only Conv/Gemm/MatMul quantized": {"op_types": list(CONV_GEMM_OPS)},
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


def speed_up_line(name: str, f_path: Path, q_path: Path, frames: int, args) -> str:
    """One student's float and int8 latency at batch 1 and 32 with the speed-ups."""
    shape = (1, 40, frames)
    ms = {
        (kind, b): onnx_latency(p, shape, b, threads=1, warmup=args.warmup, runs=args.runs)
        for b in (1, 32)
        for kind, p in (("float", f_path), ("int8", q_path))
    }
    return (
        f"{name:<12s} {ms['float', 1]:9.3f} {ms['int8', 1]:9.3f} "
        f"{ms['float', 1] / ms['int8', 1]:5.2f}x {ms['float', 32]:10.3f} "
        f"{ms['int8', 32]:9.3f} {ms['float', 32] / ms['int8', 32]:5.2f}x"
    )


def options_table(src: Path, tmp: Path, calib: list[np.ndarray], frames: int, args) -> None:
    """Markdown rows: each quantization option's size, latency and speed-up over float."""
    paths = {}
    for k, (name, options) in enumerate(OPTIONS.items()):
        paths[name] = tmp / f"{src.stem}_opt{k}.onnx"
        quantize_onnx(src, paths[name], calib, **options)
    print(f"\n{src.name}, {frames} frames, 1 thread, median ms")
    print("| option | size KB | b1 ms | b1 speed-up | b32 ms | b32 speed-up |")
    print("|---|---|---|---|---|---|")
    shape = (1, 40, frames)
    for _ in range(args.repeats):
        for name, path in paths.items():
            cells = [name, f"{path.stat().st_size / 1024:.0f}"]
            for batch in (1, 32):
                runs = args.runs if batch == 1 else max(args.runs // 4, 20)
                ref = onnx_latency(src, shape, batch, threads=1, warmup=args.warmup, runs=runs)
                ms = onnx_latency(path, shape, batch, threads=1, warmup=args.warmup, runs=runs)
                cells += [f"{ms:.3f}", f"{ref / ms:.2f}x"]
            print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--frames", type=int, default=101)
    parser.add_argument("--students", default=",".join(STUDENTS))
    parser.add_argument("--options", action="store_true", help="compare quantization options")
    parser.add_argument("--onnx", default=None, help="with --options: a float ONNX to use")
    parser.add_argument("--repeats", type=int, default=2, help="with --options: table repeats")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((16, 40, args.frames)).astype(np.float32) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.options and args.onnx:
            options_table(Path(args.onnx), tmp, calib, args.frames, args)
            return
        if not args.options:
            print(
                f"{'student':<12s} {'float b1':>9s} {'int8 b1':>9s} {'x b1':>6s} "
                f"{'float b32':>10s} {'int8 b32':>9s} {'x b32':>6s}  (ms, 1 thread, median)"
            )
        for name in args.students.split(","):
            f_path = random_student(name, args.frames, tmp / f"{name}.onnx")
            if args.options:
                options_table(f_path, tmp, calib, args.frames, args)
                continue
            q_path = tmp / f"{name}_int8.onnx"
            quantize_onnx(f_path, q_path, calib)
            print(speed_up_line(name, f_path, q_path, args.frames, args))


if __name__ == "__main__":
    main()
