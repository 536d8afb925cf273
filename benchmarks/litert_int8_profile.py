"""LiteRT int8 against float, before and after the XNNPACK rewrites, side by side in one run.

For each student (random weights, random BatchNorm statistics so that the converter cannot fold
identity norms away, as in trained models; 12 classes, 40 log-mels) it writes four `.tflite`
files: float and full-integer int8 of the converter's own graph ("plain") and of
`distill.deploy.litert_patterns.xnnpack_rewrite` ("rewritten"), int8 calibrated on random clips
(quantized from the int8 graph, `convert_float(for_int8=True)`, as the export does),
and names the operators LiteRT runs outside XNNPACK. All files are timed in the same
process, interleaved: one LiteRT interpreter each, batch 1, 1 thread (XNNPACK), `--rounds`
rounds of `--runs` invokes, the best round; the time is the thread's CPU time, which a busy
machine disturbs far less than wall time. It prints milliseconds, the int8 speed-up (float /
int8 of the same graph, and rewritten int8 against the faster of the two float files) and the
peak activation memory of the int8 files.

`--ops` adds where the time goes: every operator of each file is cut out as a one-operator model
and timed alone (the sums run 5-30 % above the whole graphs: each one-operator model pays its
own invoke), summed by operator type.

`--no-amx` repeats the timing in a child process in which the kernel refuses AMX (a seccomp
filter makes arch_prctl(ARCH_REQ_XCOMP_PERM) fail, so XNNPACK falls back to its AVX-512 / AVX2
int8 kernels). On a CPU with AMX (Xeon Sapphire Rapids and later) XNNPACK runs every int8
matrix product with its AMX kernels (16 x 64 tiles, channels packed by 64), whose cost per
pixel is flat up to 64 channels; the column says what the same files do on an x86 CPU without
AMX. Linux x86-64 only.

Usage: python benchmarks/litert_int8_profile.py [--students tc_resnet8,ds_cnn_s,bc_resnet1]
           [--frames 401] [--runs 30] [--rounds 7] [--ops] [--no-amx]
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill import students
from distill.deploy import litert
from distill.deploy.memory import memory_budget

KINDS = ("plain float", "plain int8", "rewritten float", "rewritten int8")


def random_student(name: str) -> nn.Module:
    """Random weights and BatchNorm statistics (seed 0)."""
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def write_files(name: str, frames: int, out: Path) -> list[Path]:
    """The four files of KINDS for one student."""
    model = random_student(name)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((8, 40, frames)).astype(np.float32)]
    paths = []
    for tag, rewrite in (("plain", False), ("rewritten", True)):
        f = litert.convert_float(model, out / f"{name}_{tag}_float.tflite", 40, frames, rewrite)
        g = litert.convert_float(model, out / f"{name}_{tag}_graph.tflite", 40, frames, rewrite,
                                 for_int8=True)  # fmt: skip
        q = litert.quantize_int8(g, out / f"{name}_{tag}_int8.tflite", calib)
        paths += [f, q]
    return paths


def _ready(content: bytes):  # -> Interpreter with random inputs set
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        if d["dtype"] == np.float32:
            x = rng.standard_normal(d["shape"]).astype(np.float32)
        else:
            x = rng.integers(-100, 100, d["shape"]).astype(d["dtype"])
        it.set_tensor(d["index"], x)
    for _ in range(3):
        it.invoke()
    return it


def cpu_ms(contents: list[bytes], runs: int, rounds: int) -> list[float]:
    """Best-round CPU milliseconds per invoke of each model, timed interleaved."""
    its = [_ready(c) for c in contents]
    best = [float("inf")] * len(its)
    for _ in range(rounds):
        for k, it in enumerate(its):
            start = time.thread_time()
            for _ in range(runs):
                it.invoke()
            best[k] = min(best[k], (time.thread_time() - start) / runs)
    return [b * 1000.0 for b in best]


def single_ops(path: Path) -> list[tuple[str, bytes]]:
    """(operator type, one-operator model) for every operator of a `.tflite`, in order."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(path))
    out = []
    for op in list(model.subgraphs[0].operators):
        single = copy.deepcopy(model)
        g = single.subgraphs[0]
        g.operators = [copy.deepcopy(op)]
        g.inputs = [t for t in op.inputs if t >= 0 and not _constant(single, g.tensors[t])]
        g.outputs = list(op.outputs)
        single.signatureDefs = []
        content = bytes(fu.convert_object_to_bytearray(single))
        out.append((fu.opcode_to_name(model, op.opcodeIndex), content))
    return out


def op_profile(path: Path, runs: int) -> dict[str, float]:
    """CPU milliseconds by operator type: each operator timed alone as a one-operator model."""
    ops = single_ops(path)
    totals: dict[str, float] = collections.defaultdict(float)
    for (kind, _), ms in zip(ops, cpu_ms([c for _, c in ops], runs, 3)):
        totals[kind] += ms
    return dict(totals)


def outside_xnnpack(path: Path) -> dict[str, int]:
    """Operator types (with counts) that LiteRT runs with its built-in kernels, not XNNPACK."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    options = Options(HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=1))
    if CompiledModel.from_file(str(path), options=options).is_fully_accelerated():
        return {}
    found: dict[str, int] = collections.Counter()
    for kind, content in single_ops(path):
        if not CompiledModel.from_buffer(content, options=options).is_fully_accelerated():
            found[kind] += 1
    return dict(found)


def _constant(model, tensor) -> bool:  # noqa: ANN001
    buffer = model.buffers[tensor.buffer]
    return tensor.buffer > 0 and buffer.data is not None and len(buffer.data) > 0


def deny_amx() -> bool:
    """Make this process's (and its later threads') AMX permission requests fail; True when
    arch_prctl(ARCH_REQ_XCOMP_PERM) is refused afterwards."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    prog = [
        (ld, 0, 0, 4), (jeq, 0, 5, 0xC000003E),  # arch x86-64, else allow
        (ld, 0, 0, 0), (jeq, 0, 3, 158),  # arch_prctl, else allow
        (ld, 0, 0, 16), (jeq, 0, 1, 0x1023),  # ARCH_REQ_XCOMP_PERM, else allow
        (ret, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
        (ret, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]  # fmt: skip
    raw = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Prog(len(prog), ctypes.cast(raw, ctypes.c_void_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "could not install the seccomp filter")
    return libc.syscall(158, 0x1023, 18) != 0


def table(names: list[str], ms: list[float], peaks: list[float], title: str) -> str:
    lines = [
        f"\n{title}",
        "| student | plain float | plain int8 | speed-up | rewritten float | rewritten int8 "
        "| speed-up | vs faster float | peak KB plain / rewritten (int8) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(names):
        pf, pq, rf, rq = ms[4 * i : 4 * i + 4]
        peak = f"{peaks[4 * i + 1]:.0f} / {peaks[4 * i + 3]:.0f}"
        lines.append(
            f"| {name} | {pf:.3f} | {pq:.3f} | {pf / pq:.2f}x | {rf:.3f} | {rq:.3f} "
            f"| {rf / rq:.2f}x | {min(pf, rf) / rq:.2f}x | {peak} |"
        )
    return "\n".join(lines)


def ops_table(name: str, paths: list[Path], runs: int) -> str:
    profiles = [op_profile(p, runs) for p in paths]
    kinds = sorted(
        {k for p in profiles for k in p}, key=lambda k: -sum(p.get(k, 0) for p in profiles)
    )
    lines = [f"\n{name}: CPU ms by operator type (each operator timed alone)",
             "| operator | " + " | ".join(KINDS) + " |", "|---|---|---|---|---|"]  # fmt: skip
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(f"{p.get(kind, 0):.3f}" for p in profiles) + " |")
    lines.append("| **sum** | " + " | ".join(f"**{sum(p.values()):.3f}**" for p in profiles) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="tc_resnet8,ds_cnn_s,bc_resnet1")
    parser.add_argument("--frames", type=int, default=401)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", action="store_true", help="per operator type profile")
    parser.add_argument("--no-amx", action="store_true", help="also time with AMX refused")
    parser.add_argument("--time-files", nargs="+", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.time_files:  # the --no-amx child: deny AMX, time, print JSON
        denied = deny_amx()
        contents = [Path(p).read_bytes() for p in args.time_files]
        print(json.dumps({"denied": denied, "ms": cpu_ms(contents, args.runs, args.rounds)}))
        return
    litert.require_litert()
    names = args.students.split(",")
    cpuinfo = Path("/proc/cpuinfo")
    amx = cpuinfo.is_file() and "amx_int8" in cpuinfo.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [p for n in names for p in write_files(n, args.frames, Path(tmp))]
        peaks = [memory_budget(p)["peak_activation_bytes"] / 1024 for p in paths]
        ms = cpu_ms([p.read_bytes() for p in paths], args.runs, args.rounds)
        head = f"{args.frames} frames, batch 1, 1 thread, best of {args.rounds} x {args.runs} runs"
        print(table(names, ms, peaks, f"LiteRT CPU ms per invoke ({head}; CPU has AMX: {amx})"))
        outside = {p.name: outside_xnnpack(p) for p in paths}
        print("operators outside XNNPACK (LiteRT's built-in kernels): "
              + (", ".join(f"{n} {o}" for n, o in outside.items() if o) or "none"))  # fmt: skip
        if args.no_amx:
            cmd = [sys.executable, __file__, "--runs", str(args.runs), "--rounds",
                   str(args.rounds), "--time-files", *map(str, paths)]  # fmt: skip
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            child = json.loads(done.stdout.strip().splitlines()[-1])
            print(table(names, child["ms"], peaks, f"the same files, AMX refused by the kernel "
                        f"(refusal verified: {child['denied']})"))  # fmt: skip
        if args.ops:
            for i, name in enumerate(names):
                print(ops_table(name, paths[4 * i : 4 * i + 4], args.runs))


if __name__ == "__main__":
    main()
