"""BC-ResNet-1's LiteRT graph, float and int8, in the export's form and five alternatives, timed
side by side in one run: can another graph make its int8 model faster than float at batch 1?

Every variant computes the same function as the student (checked against it); it starts from the
export's graph (`distill.deploy.litert_patterns.xnnpack_rewrite`: `BandConv` per sub-band,
`TapConv` head) and changes one pattern:

- `export`: the files `distill export --format tflite --int8` writes (sub-bands of one output
  row read only real input rows, no PAD; the int8 file's frequency means over 5 rows as
  depthwise convolutions, the float file's as MEAN);
- `plain`: the converter's own graph, no rewrite;
- `padded`: the export's graphs with their one-row sub-bands read from the zero-padded map;
- `mean`: both files with every frequency mean a MEAN operator (int8 MEAN costs about 3 ns per
  output value in XNNPACK on x86, 3-5x float);
- `depthwise_mean`: both files with the 5-row means as depthwise convolutions;
- `affine`: sub-bands of one output row as one depthwise convolution followed by the
  sub-spectral norm's scale and shift as broadcast MUL and ADD per (channel, frequency);
- `grouped`: sub-bands of one output row as one grouped 1 x 1 convolution with frequency folded
  into the channels (the converter adds TRANSPOSEs around it).

Random weights and BatchNorm statistics (seed 0), 12 classes, 40 log-mels, int8 calibrated on
random clips; batch 1, 1 thread (XNNPACK), thread CPU time, best of `--rounds` rounds of `--runs`
invokes, all files interleaved, each in `--copies` interpreters (the median of them: the same
file times up to 7 % apart in two interpreters). It prints microseconds per invoke, the
operator count, and int8 against the fastest float of the table.

Usage: python benchmarks/litert_bc_resnet_graphs.py [--frames 51] [--runs 50] [--rounds 7]
           [--copies 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from litert_int8_profile import cpu_ms, random_student
from torch import nn

from distill.deploy import litert
from distill.deploy.litert_patterns import (
    BandConv,
    input_shapes,
    xnnpack_rewrite,
)

VARIANTS = ("export", "plain", "padded", "mean", "depthwise_mean", "affine", "grouped")


class OneRowBands(nn.Module):
    """The sub-bands of a one-row-per-band BandConv (depthwise, kernel (kf, 1)) in another form."""

    def __init__(self, band: BandConv, freq_in: int, form: str) -> None:
        super().__init__()
        self.form, self.band = form, band
        (kf, _), (sf, st), (df, dt) = band.kernel, band.stride, band.dilation
        top = band.pads[2]
        taps = [[k * sf - top + i * df for i in range(kf)] for k in range(band.bands)]
        keeps = [[i for i, r in enumerate(rows) if 0 <= r < freq_in] for rows in taps]
        channels = band.weight0.shape[0]
        full = torch.zeros(band.bands, channels, kf)  # the trimmed taps back as zeros
        matrix = torch.zeros(channels, band.bands, freq_in)  # (C, F_out, F_in)
        for k, (rows, keep) in enumerate(zip(taps, keeps)):
            trimmed = getattr(band, f"weight{k}")[:, 0, :, 0]
            for j, i in enumerate(keep):
                full[k, :, i] = trimmed[:, j]
                matrix[:, k, rows[i]] += trimmed[:, j]
        biases = torch.stack([getattr(band, f"bias{k}") for k in range(band.bands)], 1)
        self.register_buffer("full", full[:, :, None, :, None].clone())
        self.register_buffer("matrix", matrix.reshape(-1, freq_in, 1, 1))
        self.register_buffer("matrix_bias", biases.reshape(-1))
        # affine: one kernel (a band with every tap) and a per-(channel, band) scale and shift
        ref = next(k for k, keep in enumerate(keeps) if len(keep) == kf)
        self.register_buffer("shared", full[ref][:, None, :, None].clone())
        scale = full[:, :, kf // 2] / full[ref][:, kf // 2]
        self.register_buffer("scale", scale.T[None, :, :, None].clone())
        self.register_buffer("shift", biases[None, :, :, None].clone())
        self.conv_args = ((sf, st), (top, 0), (df, dt))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = self.band
        if self.form == "grouped":
            b, c, f, t = x.shape
            y = F.conv2d(x.reshape(b, c * f, 1, t), self.matrix, self.matrix_bias, groups=c)
            return y.reshape(b, c, band.bands, t)
        if self.form == "affine":
            y = F.conv2d(x, self.shared, None, *self.conv_args, groups=band.groups)
            return y * self.scale + self.shift
        # padded: the map zero-padded, every band reading its whole window (the earlier export)
        x = F.pad(x, band.pads)
        (kf, _), (sf, _), (df, _) = band.kernel, band.stride, band.dilation
        span = df * (kf - 1) + 1
        outs = [
            F.conv2d(x[:, :, k * sf : k * sf + span], self.full[k], getattr(band, f"bias{k}"),
                     (1, band.stride[1]), 0, band.dilation, band.groups)
            for k in range(band.bands)
        ]  # fmt: skip
        return torch.cat(outs, dim=2)


def variant(student: nn.Module, name: str, frames: int, for_int8: bool) -> nn.Module:
    """The student in the graph form `name` (the float or the int8 file's), checked."""
    if name == "plain":
        return copy.deepcopy(student).eval()
    int8_graph = {"mean": False, "depthwise_mean": True}.get(name, for_int8)
    model = xnnpack_rewrite(student, 40, frames, for_int8=int8_graph)[0]
    x = torch.randn(1, 40, frames, generator=torch.Generator().manual_seed(1))
    names = {id(m): n for n, m in model.named_modules()}
    modules = [m for m in model.modules() if isinstance(m, BandConv)]
    shapes = input_shapes(model, modules, x)[0]
    for module in modules:
        parent_name, _, attr = names[id(module)].rpartition(".")
        parent, shape = model.get_submodule(parent_name), shapes[id(module)]
        one_row = module.rows == 1 and module.kernel[1] == 1
        if one_row and name in ("padded", "affine", "grouped"):
            setattr(parent, attr, OneRowBands(module, shape[2], name))
    with torch.no_grad():
        diff = float((model(x) - student.eval()(x)).abs().max())
    if diff > 1e-4:
        raise RuntimeError(f"variant {name} changed the output by {diff:.3g}")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=51, help="51: 1 s at a 20 ms hop")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--copies", type=int, default=3, help="interpreters per file")
    args = parser.parse_args()
    litert.require_litert()
    from ai_edge_litert.tools import flatbuffer_utils

    student = random_student("bc_resnet1")
    calib = [np.random.default_rng(0).standard_normal((8, 40, args.frames)).astype(np.float32)]
    contents, ops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in VARIANTS:
            zeros = (torch.zeros(1, 40, args.frames),)
            f, g = Path(tmp, f"{name}_float.tflite"), Path(tmp, f"{name}_int8_graph.tflite")
            f.write_bytes(litert.convert_module(variant(student, name, args.frames, False), zeros))
            g.write_bytes(litert.convert_module(variant(student, name, args.frames, True), zeros))
            q = litert.quantize_int8(g, Path(tmp, f"{name}_int8.tflite"), calib)
            for path in (f, q):
                contents.append(path.read_bytes())
                graph = flatbuffer_utils.read_model(str(path)).subgraphs[0]
                ops.append(len(graph.operators))
    # each file in `--copies` interpreters, the median of their times: one interpreter's time
    # depends on where its buffers land (the same file measured 112-115 us float, 122-131 int8)
    timed = cpu_ms(contents * args.copies, args.runs, args.rounds)
    us = [1000 * statistics.median(timed[i :: len(contents)]) for i in range(len(contents))]
    best_float = min(us[0::2])
    print(f"\nBC-ResNet-1, {args.frames} frames, batch 1, 1 thread, best of {args.rounds} x "
          f"{args.runs} invokes (microseconds, median of {args.copies} interpreters; fastest "
          f"float {best_float:.1f})")  # fmt: skip
    print("| graph | float us (ops) | int8 us (ops) | int8 vs its float | int8 vs fastest float |")
    print("|---|---|---|---|---|")
    for i, name in enumerate(VARIANTS):
        fl, q8 = us[2 * i], us[2 * i + 1]
        print(f"| {name} | {fl:.1f} ({ops[2 * i]}) | {q8:.1f} ({ops[2 * i + 1]}) "
              f"| {fl / q8:.2f}x | {best_float / q8:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
