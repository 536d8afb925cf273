"""The exported frontend's DFT in LiteRT, side by side: the two-stage DFT against the direct DFT
basis (one matrix), for the stateful step and the 1 s waveform-in window; and the step with an
int8 student (`distill export --variant stateful --format tflite --int8`).

    python benchmarks/litert_frontend.py [--students tc_resnet8,ds_cnn_s,bc_resnet1]
        [--invokes 500] [--rounds 5]

Per student (causal variant, random weights, 12 classes, the default log-mel frontend): the
float `.tflite` file sizes, microseconds per `invoke` of the stateful step (80 or 100 ms of
audio), of a full step through `LiteRTStatefulRunner.run_step` (the invoke plus setting and
reading the state tensors in Python), and of one 1 s waveform-in window; then the stateful
stream's cost per second of audio counting the invoke only (what a C or C++ caller pays) and
its ratio to the sliding window at 100 ms hops. One thread (XNNPACK); each number is the
median of `--rounds` timings of `--invokes` calls. The direct DFT is built by turning the split
off (`split_plan` patched to find none), the export path is otherwise the same. The int8 row
(two-stage DFT, frontend float) is calibrated on 10 s of noise: its timing, not its accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from distill import students
from distill.data.frontend import Frontend
from distill.deploy import onnx_frontend
from distill.deploy.detector_model import StudentDetector
from distill.deploy.litert import convert_module, interpreter
from distill.deploy.litert_stream import LiteRTStatefulDetector, export_stateful_tflite
from distill.deploy.litert_stream_int8 import export_stateful_tflite_int8
from distill.deploy.onnx_frontend import WaveformModel
from distill.deploy.onnx_stream import step_seconds_for

CLASSES = 12


def timed(call, invokes: int, rounds: int) -> float:
    """Microseconds per call: the median of `rounds` timings of `invokes` calls."""
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(invokes):
            call()
        times.append((time.perf_counter() - start) / invokes * 1e6)
    return statistics.median(times)


def measure(det: StudentDetector, tmp: Path, tag: str, args, int8: bool) -> dict[str, float]:
    step = step_seconds_for(det)
    if int8:
        noise = 0.1 * np.random.default_rng(1).standard_normal(10 * det.sample_rate)
        path = export_stateful_tflite_int8(det, tmp / f"{tag}_step.tflite", noise, step)
    else:
        path = export_stateful_tflite(det, tmp / f"{tag}_step.tflite", step)
    runner = LiteRTStatefulDetector(path).open_stateful(det.sample_rate)
    samples = np.random.default_rng(0).standard_normal((1, runner.det.step_samples))
    samples = (0.1 * samples).astype(np.float32)
    runner.it.set_tensor(runner.samples_index, samples)
    window = tmp / f"{tag}_window.tflite"
    module = WaveformModel(det.frontend, det.student).eval()
    window.write_bytes(convert_module(module, (torch.zeros(1, det.sample_rate),)))
    it = interpreter(window, 1)
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, det.sample_rate), np.float32))
    return {
        "step_ms": 1000 * step,
        "step_kb": path.stat().st_size / 1024,
        "window_kb": window.stat().st_size / 1024,
        "invoke_us": timed(runner.it.invoke, args.invokes, args.rounds),
        "run_step_us": timed(lambda: runner.run_step(samples), args.invokes, args.rounds),
        "window_us": timed(it.invoke, max(1, args.invokes // 10), args.rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", default="tc_resnet8,ds_cnn_s,bc_resnet1")
    parser.add_argument("--invokes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [f"c{i}" for i in range(CLASSES)]
    print(f"{'student':12s} {'DFT':7s} {'step':>6s} {'step KB':>8s} {'window KB':>10s} "
          f"{'invoke us':>10s} {'run_step us':>12s} {'window us':>10s} {'ms/s step':>10s} "
          f"{'ms/s window':>12s} {'ratio':>6s}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.students.split(","):
            torch.manual_seed(0)
            model = students.create(name, CLASSES, 40, causal=True).eval()
            det = StudentDetector(model, Frontend(), names, 1.0, "softmax", student_name=name)
            rows = {}
            for dft in ("split", "direct", "int8"):
                found = onnx_frontend.split_plan if dft != "direct" else (lambda *a: None)
                with mock.patch.object(onnx_frontend, "split_plan", found):
                    rows[dft] = measure(det, Path(tmp), f"{name}_{dft}", args, dft == "int8")
            for dft, r in rows.items():
                per_s_step = r["invoke_us"] / r["step_ms"]  # us per ms = ms per s
                per_s_window = 10 * r["window_us"] / 1000  # 10 windows per second
                print(f"{name:12s} {dft:7s} {r['step_ms']:4.0f}ms {r['step_kb']:8.0f} "
                      f"{r['window_kb']:10.0f} {r['invoke_us']:10.1f} {r['run_step_us']:12.1f} "
                      f"{r['window_us']:10.1f} {per_s_step:10.3f} {per_s_window:12.3f} "
                      f"{per_s_window / per_s_step:5.2f}x")  # fmt: skip
            s, d, q = rows["split"], rows["direct"], rows["int8"]
            print(f"{'':12s} direct / split: step invoke {d['invoke_us'] / s['invoke_us']:.2f}x, "
                  f"window {d['window_us'] / s['window_us']:.2f}x, "
                  f"step file {d['step_kb'] / s['step_kb']:.2f}x; float / int8 student: step "
                  f"invoke {s['invoke_us'] / q['invoke_us']:.2f}x, "
                  f"step file {s['step_kb'] / q['step_kb']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
