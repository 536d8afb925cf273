"""Data-loading throughput of the synth_kws noisy loader against a small student's training step.

Builds a small synthetic keyword bank in a temporary folder (the real on-disk layout: word
folders of sine-sweep "keywords", split lists, manifest.csv, _background_noise_ with
noise_splits.csv), then for 4 s and 8 s clips measures, in one run:
- loader clips/s: batches from `AudioDataModule.train_dataloader()` plus the log-mel Frontend;
- training clips/s: forward + backward + SGD step of a student (students.create("tc_resnet8"),
  or a tiny inline conv net when `students` is not importable) on features of the same shape;
and prints the ratio loader/training (> 1: the loader keeps up with training).

Usage: python benchmarks/data_throughput.py [--workers 2] [--batch-size 32] [--batches 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "cat"]
SR = 16000


def write_bank(root: Path, speakers: int = 48, noise_seconds: float = 30.0) -> None:
    """A synth_kws-layout bank: 1 s clips with a sweep in [onset, offset], 3 noise files."""
    rng = np.random.default_rng(0)
    rows, val, test = [], [], []
    for wi, word in enumerate(WORDS):
        (root / word).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            rel = f"{word}/spk{s:02d}_nohash_0.wav"
            onset, offset = rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.95)
            t = np.arange(int((offset - onset) * SR)) / SR
            f0, f1 = 200 + 60 * wi, 600 + 80 * wi
            sweep = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
            wave = np.zeros(SR, np.float32)
            wave[int(onset * SR) : int(onset * SR) + len(t)] = 0.5 * sweep * np.hanning(len(t))
            sf.write(root / rel, wave, SR)
            split = "test" if s == speakers - 1 else "validation" if s == speakers - 2 else "train"
            (val if split == "validation" else test if split == "test" else []).append(rel)
            rows.append([rel, word, f"spk{s:02d}", split, onset, offset, "sweep", 0, 0, 0])
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "path",
                "label",
                "speaker",
                "split",
                "onset",
                "offset",
                "voice",
                "rate",
                "pitch",
                "gain_db",
            ]
        )
        w.writerows(rows)
    (root / "_background_noise_").mkdir(exist_ok=True)
    with open(root / "noise_splits.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "split"])
        for k, split in enumerate(("train", "validation", "test")):
            noise = 0.2 * rng.standard_normal(int(noise_seconds * SR)).astype(np.float32)
            sf.write(root / "_background_noise_" / f"noise{k}.wav", noise, SR)
            w.writerow([f"noise{k}.wav", split])
    (root / "dataset.json").write_text(json.dumps({"kind": "synth_kws", "note": "benchmark"}))


class TinyConv(nn.Module):
    """Fallback student: two 1-D convs over time on (B, F, T) features."""

    def __init__(self, n_features: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_features, 32, 9, stride=2, padding=4),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Conv1d(32, 48, 9, stride=2, padding=4),
            nn.BatchNorm1d(48),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(48, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_student(n_features: int, num_classes: int) -> tuple[nn.Module, str]:
    try:
        import students

        create = getattr(students, "create", None)
        if create is None:  # the package may not re-export it (yet)
            from students.registry import create
        return create("tc_resnet8", num_classes=num_classes, n_features=n_features), "tc_resnet8"
    except Exception as err:  # students not built yet: say so, use the inline model
        print(f"note: students.create('tc_resnet8') unavailable ({err!r}); using TinyConv")
        return TinyConv(n_features, num_classes), "tiny inline conv"


def loader_rate(dm, frontend, batches: int) -> float:
    """Clips/s of train batches including the frontend (first batch excluded: worker start).

    One loader is reused across epochs, as Lightning does (a new loader restarts its workers).
    """
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)
    clips, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        with torch.no_grad():
            frontend(batch["waveform"])
        clips += batch["waveform"].shape[0]
    return clips / (time.perf_counter() - start)


def train_rate(model: nn.Module, feats: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Clips/s of forward + backward + SGD step."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, feats, labels = model.to(device).train(), feats.to(device), labels.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(feats), labels).backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * feats.shape[0] / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    from distill.config.schema import DataConfig
    from distill.data import build_datamodule
    from distill.data.frontend import Frontend

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"torch {torch.__version__}, training on {device}, {args.workers} loader worker(s), "
        f"batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth_kws"
        write_bank(root)
        frontend = Frontend()
        print(f"{'clip':>5} {'loader clips/s':>15} {'train clips/s':>14} {'ratio':>7}  student")
        for seconds in (4.0, 8.0):
            dm = build_datamodule(
                DataConfig(
                    name="synth_kws",
                    root=str(root),
                    clip_seconds=seconds,
                    batch_size=args.batch_size,
                    num_workers=args.workers,
                )
            )
            load = loader_rate(dm, frontend, args.batches)
            wave = torch.randn(args.batch_size, dm.clip_samples)
            with torch.no_grad():
                feats = frontend(wave)
            model, name = make_student(feats.shape[1], dm.num_classes)
            labels = torch.randint(0, dm.num_classes, (args.batch_size,))
            train = train_rate(model, feats, labels, args.steps)
            print(f"{seconds:>4.0f}s {load:>15.1f} {train:>14.1f} {load / train:>7.2f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
