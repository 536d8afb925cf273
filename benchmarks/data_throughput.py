"""Data-loading throughput of the synth_kws noisy loader against a small student's training step.

Builds a small synthetic keyword bank in a temporary folder (the real on-disk layout: word
folders of sine-sweep "keywords", split lists, manifest.csv, _background_noise_ with
noise_splits.csv), then for 4 s and 8 s clips measures, in one run:
- loader clips/s: mixed waveform batches from `AudioDataModule.train_dataloader()`;
- features clips/s: the log-mel Frontend on one batch, for each framing in `FRONTENDS`;
- cached clips/s: batches of features read from the feature cache (`data.cache_features=true`,
  fixed training mixtures), built once beforehand (build time not counted);
- training clips/s: forward + backward + SGD step of TC-ResNet8 on features of that shape;
and prints the ratios pipeline/training, where the pipeline is loader then features in series
as in training, and cached/training (> 1: the data side keeps up with training).

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


FRONTENDS = {  # name -> Frontend kwargs
    "10 ms hop, n_fft 512 (BC-ResNet default)": {},
    "20 ms hop, n_fft 640 (kws recipes)": {"n_fft": 640, "win_length": 640, "hop_length": 320},
    "20 ms hop, n_fft 1024 (demo)": {"n_fft": 1024, "win_length": 640, "hop_length": 320},
}


def loader_rate(dm, batches: int, key: str = "waveform") -> float:
    """Clips/s of train batches (mixing, no features; first batch excluded: worker start).

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
        clips += batch[key].shape[0]
    return clips / (time.perf_counter() - start)


@torch.no_grad()
def frontend_rate(frontend: nn.Module, wave: torch.Tensor, repeats: int = 5) -> float:
    """Clips/s of the feature transform on one batch of waveforms (after one warm-up call)."""
    frontend(wave)
    start = time.perf_counter()
    for _ in range(repeats):
        frontend(wave)
    return repeats * wave.shape[0] / (time.perf_counter() - start)


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


def cached_rate(root: Path, tmp: Path, seconds: float, frontend: dict, args) -> float:
    """Clips/s of training batches served by the feature cache (one fixed mixture per clip)."""
    from omegaconf import OmegaConf

    from distill.caches.feature_cache import attach_feature_cache
    from distill.config import RecipeConfig
    from distill.data import build_datamodule
    from distill.data.frontend import build_frontend

    cfg = OmegaConf.structured(RecipeConfig)
    cfg.run_dir = str(tmp)
    cfg.data.root = str(root)
    cfg.data.update(clip_seconds=seconds, batch_size=args.batch_size, num_workers=args.workers)
    cfg.data.update(train_variants=1, cache_features=True)
    cfg.frontend.update(frontend)
    dm = build_datamodule(cfg.data)
    attach_feature_cache(cfg, dm, build_frontend(cfg.frontend), splits=("train",))
    return loader_rate(dm, args.batches, key="features")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    from distill import students
    from distill.config.schema import DataConfig
    from distill.data import build_datamodule
    from distill.data.frontend import Frontend

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"torch {torch.__version__}, training on {device}, {args.workers} loader worker(s), "
        f"batch {args.batch_size}, {torch.get_num_threads()} torch thread(s)"
    )
    header = ["clip", "frontend", "loader", "features", "pipeline", "cached", "training"]
    header += ["pipeline ratio", "cached ratio"]
    print(
        "clips/s; pipeline = loader then features in series; cached = features read from the "
        "feature cache; ratios: / training"
    )
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth_kws"
        write_bank(root)
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
            load = loader_rate(dm, args.batches)
            wave = torch.randn(args.batch_size, dm.clip_samples)
            labels = torch.randint(0, dm.num_classes, (args.batch_size,))
            for name, kwargs in FRONTENDS.items():
                frontend = Frontend(**kwargs)
                feats_rate = frontend_rate(frontend, wave)
                with torch.no_grad():
                    feats = frontend(wave)
                model = students.create("tc_resnet8", num_classes=dm.num_classes, n_features=40)
                train = train_rate(model, feats, labels, args.steps)
                pipeline = 1.0 / (1.0 / load + 1.0 / feats_rate)
                cached = cached_rate(root, Path(tmp), seconds, kwargs, args)
                cells = [f"{seconds:g} s", name, f"{load:.0f}", f"{feats_rate:.0f}"]
                cells += [f"{pipeline:.0f}", f"{cached:.0f}", f"{train:.0f}"]
                cells += [f"{pipeline / train:.2f}", f"{cached / train:.2f}"]
                print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
