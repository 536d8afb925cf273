"""Streaming cost side by side, and what a student trained on long clips does on a 1 s window.

    python benchmarks/stream_cost.py [--students tc_resnet8,gru,...|all] [--seconds 20]
        [--recipe kws_tc_resnet8] [--no-onnx] [--no-litert] [--window-study] [--bank DIR]
        [--run RUN]

Part 1, cost: milliseconds of one CPU thread per second of audio and the real-time factor
(seconds of audio per second of compute) of every student (random weights, 12 classes, the
default log-mel frontend without per-clip normalisation), for a 1 s detection window and for
the recipe's clip length: the sliding window at 100 ms hops, the stateful stream at 20 ms and
100 ms hops (causal variants, `causal=True`, where the student has one), all in PyTorch; and in
onnxruntime the waveform-in model on the sliding window (its STFT a DFT matrix), the sliding
window with an FFT frontend (torchaudio) in front of the features-in student ONNX, and the
stateful step model (its step <= 100 ms); and in the LiteRT interpreter (XNNPACK) the sliding
window as a batch-1 waveform-in `.tflite` invoked once per window, as a device scores each hop,
and the stateful step. Ratios printed: the stateful stream against the sliding window, and which
CNN students run at least 100x faster than real time on one core with a 1 s window.

Part 2, window study (--window-study): accuracy on the test clips of a keyword bank, whole
clips against 1 s windows centred on the keyword, of a student trained on long clips and of
one trained on 1 s clips (the fix: training windows matched to the detection window,
`data.clip_seconds=1`). With --run, that run is measured instead of training two; without
--bank a small synthetic bank is generated.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from distill import students
from distill.data.frontend import Frontend
from distill.deploy.detector_model import StudentDetector
from distill.deploy.stream import StreamConfig, waveform_posteriors

CNN = ("tc_resnet", "ds_cnn", "bc_resnet", "mobilenetv3")
CAUSAL = ("tc_resnet", "ds_cnn", "bc_resnet")  # students with a causal=True option
DEFAULT = "tc_resnet8,tc_resnet14,ds_cnn_s,ds_cnn_m,bc_resnet1,bc_resnet3,mobilenetv3_small,gru,crnn,lstm_p,att_rnn"  # noqa: E501
CLASSES = 12


def detector(name: str, window: float, causal: bool) -> StudentDetector:
    torch.manual_seed(0)
    kwargs = {"causal": True} if causal else {}
    model = students.create(name, CLASSES, 40, **kwargs).eval()
    names = [f"c{i}" for i in range(CLASSES)]
    return StudentDetector(model, Frontend(), names, window, "softmax", student_name=name)


def cost(det, wave: np.ndarray, config: StreamConfig, repeats: int) -> float:
    """Milliseconds per second of audio (best of `repeats`)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        waveform_posteriors(det, wave, config, chunk_seconds=1.0)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / (len(wave) / 16000)


def stateful_cost(runtime: str, det, wave, repeats: int, path: Path, export, backend) -> dict:
    """`{"<runtime> stateful <step>ms": ms per s}` of the exported stateful step model (`export`
    writes it at `path`, `backend` runs it); empty when the student cannot stream statefully."""
    from distill.deploy.onnx_stream import step_seconds_for

    if det.stateful_reason() is not None:
        return {}
    step = step_seconds_for(det)
    config = StreamConfig(mode="stateful", hop_seconds=step)
    ms = cost(backend(export(det, path, step)), wave, config, repeats)
    return {f"{runtime} stateful {1000 * step:.0f}ms": ms}


class FeatureWindows:
    """The sliding window with the features computed in PyTorch (torchaudio's FFT log-mel, as
    `StudentDetector` computes them) and the features-in student ONNX in onnxruntime: what a
    device with an FFT frontend runs; the waveform-in ONNX computes the STFT as a DFT matrix."""

    def __init__(self, det, path: Path) -> None:
        from distill.cost import session
        from distill.deploy.onnx_io import export_float

        self.det = det
        frames = det.frontend.num_frames(round(det.window_seconds * det.sample_rate))
        export_float(det.student, path, det.frontend.n_features, frames)
        self.session = session(path, 1)

    def __getattr__(self, name: str):
        return getattr(self.det, name)

    def stateful_reason(self) -> str:
        return "a features-in window model"

    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            feats = self.det.frontend(windows.float()).numpy()
        logits = self.session.run(None, {"features": feats})[0]
        return torch.from_numpy(logits).softmax(-1)


def onnx_costs(det, wave: np.ndarray, tmp: Path, repeats: int) -> dict[str, float]:
    from distill.deploy.onnx_detector import OnnxStatefulDetector, load_onnx_detector
    from distill.deploy.onnx_stream import export_stateful, export_waveform

    out = {}
    path = export_waveform(det, tmp / f"{det.student_name}_w.onnx")
    out["onnx sliding 100ms"] = cost(load_onnx_detector(path), wave, StreamConfig(), repeats)
    windows = FeatureWindows(det, tmp / f"{det.student_name}_f.onnx")
    out["onnx sliding 100ms, fft"] = cost(windows, wave, StreamConfig(), repeats)
    return out | stateful_cost("onnx", det, wave, repeats, tmp / f"{det.student_name}_s.onnx",
                               export_stateful, OnnxStatefulDetector)  # fmt: skip


class LiteRTWindows:
    """The sliding window in LiteRT: a waveform-in `.tflite` of one window (frontend + student,
    float, batch 1, XNNPACK, one thread), invoked once per window, as a device scores each hop."""

    def __init__(self, det, path: Path) -> None:
        from distill.deploy.litert import convert_module, interpreter
        from distill.deploy.onnx_frontend import WaveformModel

        self.det, samples = det, round(det.window_seconds * det.sample_rate)
        module = WaveformModel(det.frontend, det.student).eval()
        path.write_bytes(convert_module(module, (torch.zeros(1, samples),)))
        self.it = interpreter(path, 1)
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]

    def __getattr__(self, name: str):
        return getattr(self.det, name)

    def stateful_reason(self) -> str:
        return "a waveform-in window model"

    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        rows = []
        for window in windows.numpy():
            self.it.set_tensor(self.inp, window[None])
            self.it.invoke()
            rows.append(self.it.get_tensor(self.out)[0])
        return torch.from_numpy(np.stack(rows)).softmax(-1)


def litert_costs(det, wave: np.ndarray, tmp: Path, repeats: int) -> dict[str, float]:
    from distill.deploy.litert_stream import LiteRTStatefulDetector, export_stateful_tflite

    windows = LiteRTWindows(det, tmp / f"{det.student_name}_w.tflite")
    out = {"litert sliding 100ms": cost(windows, wave, StreamConfig(batch_size=1), repeats)}
    return out | stateful_cost("litert", det, wave, repeats,
                               tmp / f"{det.student_name}_s.tflite", export_stateful_tflite,
                               LiteRTStatefulDetector)  # fmt: skip


def macs_per_second(name: str) -> tuple[float, float]:
    """Model multiply-adds per second of audio (frontend excluded), 1 s window: the sliding
    window at 100 ms hops (10 windows of 101 frames) and a stream that computes every frame
    once (the stateful stream at any hop; its head per hop is left out)."""
    model = students.create(name, CLASSES, 40).eval()
    per_window = students.count_macs(model, (1, 40, 101))
    return 10 * per_window, per_window


def measure(name: str, clip: float, wave: np.ndarray, args, tmp: Path) -> dict[str, float]:
    causal = name.startswith(CAUSAL)
    row = {
        f"sliding 100ms, {w:g}s": cost(
            detector(name, w, False), wave, StreamConfig(mode="sliding"), args.repeats
        )
        for w in (1.0, clip)
    }
    det = detector(name, 1.0, causal)
    if det.stateful_reason() is None:
        for hop in (0.02, 0.1):
            config = StreamConfig(mode="stateful", hop_seconds=hop)
            row[f"stateful {1000 * hop:.0f}ms, 1s"] = cost(det, wave, config, args.repeats)
        long = detector(name, clip, causal)
        row[f"stateful 100ms, {clip:g}s"] = cost(long, wave, StreamConfig(mode="stateful"),
                                                 args.repeats)  # fmt: skip
    if args.onnx:
        row |= onnx_costs(det, wave, tmp, args.repeats)
    if args.litert:
        row |= litert_costs(det, wave, tmp, args.repeats)
    return row


def print_costs(rows: dict[str, dict[str, float]]) -> None:
    columns = list(dict.fromkeys(c for r in rows.values() for c in r))
    print("\nms of one CPU thread per second of audio (x real time in brackets)")
    print(f"{'student':18s}" + "".join(f"{c:>24s}" for c in columns))
    for name, row in rows.items():
        cells = [f"{row[c]:9.2f} ({1000 / row[c]:7.0f}x)" if c in row else f"{'-':>21s}"
                 for c in columns]  # fmt: skip
        print(f"{name:18s}" + "".join(f"{c:>24s}" for c in cells))


def print_ratios(rows: dict[str, dict[str, float]]) -> None:
    print("\nstateful 20 ms hop vs sliding window 100 ms hop (1 s window): how many times cheaper")
    print("per second of audio (target for tc_resnet8: >= 5x)")
    print(f"  {'student':18s} {'model MACs':>10s} {'PyTorch time':>13s} {'onnxruntime time':>17s}"
          f" {'LiteRT time':>17s}")  # fmt: skip
    for name, row in rows.items():
        if "stateful 20ms, 1s" not in row:
            continue
        sliding, stateful = macs_per_second(name)
        eager = row["sliding 100ms, 1s"] / row["stateful 20ms, 1s"]
        cells = []
        for runtime in ("onnx", "litert"):
            step = next((c for c in row if c.startswith(f"{runtime} stateful")), None)
            base = row[f"{runtime} sliding 100ms"] if step else 0.0
            cells.append(f"{base / row[step]:8.2f}x ({step.split()[-1]})" if step else "-")
        print(f"  {name:18s} {sliding / stateful:9.2f}x {eager:12.2f}x {cells[0]:>17s}"
              f" {cells[1]:>17s}")  # fmt: skip
    print("  (exported runtimes: the stateful step is a multiple of the student's time stride,")
    print("   e.g. 80 ms for TC-ResNet8, whose posterior changes once per model step at any hop)")
    print("\nCNN students at >= 100x real time on one core with a 1 s window:")
    for name, row in rows.items():
        if name.startswith(CNN):
            ends = ("1s", "ms", "fft")
            fast = [c for c, v in row.items() if c.endswith(ends) and 1000 / v >= 100]
            fast = [c for c in fast if "1s" in c or c.startswith(("onnx", "litert"))]
            fast = [c.removesuffix(", 1s") for c in fast]
            print(f"  {name:18s} {'; '.join(fast) if fast else 'none'}")


def make_bank(root: Path, per_word: int) -> Path:
    """A small synthetic keyword bank (ten keywords, two other words)."""
    from distill.data.synth.kws import synth_kws

    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    synth_kws(root, words=words, unknown_words=["cat", "dog"], per_word=per_word,
              per_unknown=per_word // 2, speakers=per_word, noise_seconds=20)  # fmt: skip
    return root


def train(bank: Path, clip: float, epochs: int, out: Path) -> Path:
    """A TC-ResNet8 trained on `clip`-second clips of `bank` (task loss only); its run dir."""
    from omegaconf import OmegaConf

    from distill.config import RecipeConfig
    from distill.pipeline.fit import fit

    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name, cfg.run_dir = f"clip{clip:g}", str(out)
    cfg.data.root, cfg.data.clip_seconds, cfg.data.batch_size = str(bank), clip, 32
    cfg.teacher.kind = "none"
    cfg.trainer.max_epochs, cfg.trainer.progress_bar = epochs, False
    cfg.logger.wandb = False
    return Path(fit(cfg).run_dir)


def crop_1s(waves: torch.Tensor, spans: torch.Tensor, sr: int) -> torch.Tensor:
    """1 s of each clip centred on its first speech span (the middle when it has none)."""
    length = waves.shape[1]
    centre = torch.nan_to_num(spans[:, 0].mean(dim=1), nan=length / sr / 2)
    starts = (centre * sr - sr // 2).long().clamp(0, length - sr)
    return torch.stack([w[s : s + sr] for w, s in zip(waves, starts)])


def accuracies(run: Path, bank: Path, clip: float) -> tuple[float, float]:
    """Test accuracy of the run's student on `clip`-second clips and on 1 s windows of them."""
    from distill.config import apply_overrides
    from distill.data import build_datamodule
    from distill.pipeline.artifacts import load_module, resolve

    module = load_module(resolve(run)[0])
    data = apply_overrides(module.cfg, [f"data.root={bank}", f"data.clip_seconds={clip}"]).data
    right_full = right_1s = n = 0
    with torch.inference_mode():
        for batch in build_datamodule(data).dataloader("test", shuffle=False):
            wave, label = batch["waveform"].float(), batch["label"]
            short = crop_1s(wave, batch["spans"], int(data.sample_rate))
            right_full += int((module(wave).argmax(1) == label).sum())
            right_1s += int((module(short).argmax(1) == label).sum())
            n += len(label)
    return right_full / n, right_1s / n


def window_study(args: argparse.Namespace) -> None:
    """Part 2: accuracy on long clips vs 1 s windows, trained on long clips vs on 1 s clips."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bank = args.bank or make_bank(tmp / "bank", args.per_word)
        long = args.long_seconds
        if args.run is not None:
            runs = {f"{args.run}": args.run}
        else:
            runs = {
                f"trained on {c:g} s clips": train(bank, c, args.epochs, tmp / "runs")
                for c in (long, 1.0)
            }
        print(f"\ntest accuracy, {long:g} s clips vs 1 s windows centred on the keyword ({bank})")
        for label, run in runs.items():
            full, short = accuracies(run, bank, long)
            print(f"  {label:28s} {long:g} s clips {100 * full:5.1f}%   1 s windows "
                  f"{100 * short:5.1f}%   ({100 * (short - full):+.1f} points)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default=DEFAULT, help="comma-separated, or all")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per measurement")
    parser.add_argument("--recipe", default="kws_tc_resnet8", help="its clip length is used")
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument("--no-litert", dest="litert", action="store_false")
    parser.add_argument("--window-study", action="store_true", help="also run part 2")
    parser.add_argument("--bank", type=Path, default=None, help="keyword bank for part 2")
    parser.add_argument("--run", type=Path, default=None, help="a run to measure in part 2")
    parser.add_argument("--long-seconds", type=float, default=2.0, help="part 2: long clips")
    parser.add_argument("--epochs", type=int, default=15, help="part 2: training epochs")
    parser.add_argument("--per-word", type=int, default=100, help="part 2: generated bank size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from distill.config import load_recipe

    clip = float(load_recipe(args.recipe).data.clip_seconds)
    names = students.available() if args.students == "all" else args.students.split(",")
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(args.seconds * 16000))).astype(
        np.float32
    )
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows[name] = measure(name, clip, wave, args, Path(tmp))
            print(f"measured {name}", flush=True)
    print(f"(recipe {args.recipe}: clip {clip:g} s; {args.seconds:g} s of audio, torch "
          f"{torch.__version__}, 1 thread)")  # fmt: skip
    print_costs(rows)
    print_ratios(rows)
    if args.window_study:
        window_study(args)


if __name__ == "__main__":
    main()
