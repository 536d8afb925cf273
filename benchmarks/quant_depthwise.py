"""Are onnxruntime's int8 depthwise kernels faster than its float ones? Float vs int8, 1 thread.

BC-ResNet-1 is slower in int8 than in float on x86 (docs/qat_export.md). This isolates the
kernels from the model: a chain of blocks made only of one kind of convolution, at several
channel widths, on a BC-ResNet-sized map (20 frequency bins x 401 frames), quantized whole
(every conv and every op int8, one Q at the input and one DQ at the output, so no float
islands and no extra Q/DQ pairs: the best case for int8). Kinds:

- depthwise: frequency 3x1 and dilated temporal 1x3 depthwise convs, as in a BC-ResBlock;
- pointwise: 1x1 convs, as the BC-ResBlock's channel mixing;
- dense: 3x3 convs with all channels, the kind of kernel TC-ResNet's (1 x 9) convs are.

Each row is measured side by side in one run: float and int8 of the same chain, median of
`--runs` runs after warm-up, at batch 1 and 32, with the float/int8 speed-up.

Usage: python benchmarks/quant_depthwise.py [--widths 8,16,32,64] [--runs 50] [--frames 401]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.cost import onnx_latency
from distill.deploy.int8 import quantize_onnx
from distill.deploy.onnx_io import export_float

FREQ = 20  # BC-ResNet-1's map after its stride-2 head on 40 log-mel bins


def block(kind: str, width: int) -> list[nn.Module]:
    """One block of the chain: convolutions of `kind` at `width` channels, each with ReLU."""
    if kind == "depthwise":
        convs = [
            nn.Conv2d(width, width, (3, 1), padding=(1, 0), groups=width),
            nn.Conv2d(width, width, (1, 3), padding=(0, 2), dilation=(1, 2), groups=width),
        ]
    elif kind == "pointwise":
        convs = [nn.Conv2d(width, width, 1), nn.Conv2d(width, width, 1)]
    elif kind == "dense":
        convs = [nn.Conv2d(width, width, 3, padding=1)]
    else:
        raise ValueError(f"kind must be depthwise, pointwise or dense, given {kind!r}")
    return [layer for conv in convs for layer in (conv, nn.ReLU())]


class ConvChain(nn.Module):
    """(B, F, T) -> the map repeated over `width` channels, `depth` blocks of `kind`, mean.

    No stem convolution: a one-input-channel conv is slow in int8 on its own and would hide
    the kernels under test."""

    def __init__(self, kind: str, width: int, depth: int = 4) -> None:
        super().__init__()
        self.width = width
        self.body = nn.Sequential(*[layer for _ in range(depth) for layer in block(kind, width)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1).expand(-1, self.width, -1, -1)
        return self.body(x).mean(dim=(2, 3))


def row(kind: str, width: int, frames: int, tmp: Path, args: argparse.Namespace) -> str:
    """Markdown row: float and int8 latency of one chain at batch 1 and 32, with speed-ups."""
    torch.manual_seed(0)
    src = export_float(ConvChain(kind, width).eval(), tmp / f"{kind}{width}.onnx", FREQ, frames, 18)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((8, FREQ, frames)).astype(np.float32) for _ in range(2)]
    int8 = tmp / f"{kind}{width}_int8.onnx"
    quantize_onnx(src, int8, calib, keep_slow_convs_float=False, op_types=None)
    cells = [kind, str(width)]
    shape = (1, FREQ, frames)
    for batch in (1, 32):
        runs = args.runs if batch == 1 else max(args.runs // 4, 10)
        ms = [
            onnx_latency(p, shape, batch, threads=1, warmup=args.warmup, runs=runs)
            for p in (src, int8)
        ]
        cells += [f"{ms[0]:.3f}", f"{ms[1]:.3f}", f"{ms[0] / ms[1]:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="depthwise,pointwise,dense")
    parser.add_argument("--widths", default="8,16,32,64")
    parser.add_argument("--frames", type=int, default=401)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    print(f"conv chains on {FREQ} x {args.frames} maps, onnxruntime, 1 thread, median ms")
    print("| kind | width | float b1 | int8 b1 | b1 x | float b32 | int8 b32 | b32 x |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            for width in widths:
                print(row(kind, width, args.frames, Path(tmp), args), flush=True)


if __name__ == "__main__":
    main()
