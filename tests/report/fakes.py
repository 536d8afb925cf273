"""A fake `distill compare` output folder: results.csv, run dirs with samples, a teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from distill.config import RecipeConfig
from distill.core.losses.arms import Arm
from distill.pipeline.samples import SAMPLES_FILE
from distill.report.results import RESULT_COLUMNS, write_rows

STUDENTS = {"tc_resnet8": (66_000, 1_520_000), "crnn": (468_000, 9_800_000)}
ARMS = ["none", "temporal", "span"]
# Known test scores per (student, arm): one value per seed.
SCORES = {
    ("tc_resnet8", "none"): [0.40, 0.44],
    ("tc_resnet8", "temporal"): [0.48, 0.49],
    ("tc_resnet8", "span"): [0.50, 0.52],
    ("crnn", "none"): [0.55, 0.61],
    ("crnn", "temporal"): [0.62, 0.60],
    ("crnn", "span"): [0.63, 0.64],
}
IN_SPAN = {"none": "", "temporal": 0.7, "span": 0.9}
ENTROPY = {"none": "", "temporal": 2.5, "span": 1.8}
CLASSES = ["yes", "no", "up", "down"]
CLIP_SECONDS = 4.0
TEACHER = {
    "test/acc": 0.49,
    "test/teacher_attention_in_span": 0.88,
    "test/teacher_attention_entropy": 3.67,
}


def fake_recipe(tmp: Path, teacher: bool = True) -> DictConfig:
    """A recipe whose teacher results live under `tmp/teacher` (or no teacher)."""
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "fake-compare"
    cfg.description = "Fake grid for report tests"
    cfg.data.root = str(tmp / "data")
    cfg.teacher.kind = "inhouse" if teacher else "none"
    cfg.teacher.path = str(tmp / "teacher") if teacher else None
    return cfg


def write_teacher(tmp: Path, metric: str = "acc") -> None:
    test = dict(TEACHER)
    if metric != "acc":
        test[f"test/{metric}"] = test.pop("test/acc")
    (tmp / "teacher").mkdir(parents=True, exist_ok=True)
    results = {
        "params": 3_200_000,
        "macs": 410_000_000,
        "clip_seconds": CLIP_SECONDS,
        "test": test,
        "wall_seconds": 300.0,
    }
    (tmp / "teacher" / "results.json").write_text(json.dumps(results))


def write_samples(run_dir: Path, seed: int, multi_label: bool, student: bool) -> None:
    """Synthetic attention_samples.npz: 5 clips, a noise burst at the span, peaked attention."""
    rng = np.random.default_rng(seed)
    n, sr = 5, 1000
    wave = 0.05 * rng.standard_normal((n, int(CLIP_SECONDS * sr)))
    spans = np.full((n, 8, 2), np.nan, dtype=np.float32)
    for k in range(n - 1):  # the last clip has no span
        onset = 0.5 + 0.5 * k
        spans[k, 0] = (onset, onset + 0.8)
        wave[k, int(onset * sr) : int((onset + 0.8) * sr)] *= 10
    spans[1, 1] = (3.2, 3.6)

    def peaked(steps: int) -> np.ndarray:
        t = (np.arange(steps) + 0.5) * CLIP_SECONDS / steps
        centre = np.where(np.isnan(spans[:, 0, 0]), 2.0, spans[:, 0, 0] + 0.4)
        a = np.exp(-((t[None] - centre[:, None]) ** 2) / 0.1) + 0.05
        return (a / a.sum(-1, keepdims=True)).astype(np.float32)

    if multi_label:
        labels = (rng.random((n, len(CLASSES))) > 0.5).astype(np.float32)
    else:
        labels = rng.integers(0, len(CLASSES), n)
    arrays = {"teacher_attention": peaked(25)}
    if student:
        arrays["student_attention"] = peaked(13)
    np.savez_compressed(
        run_dir / SAMPLES_FILE,
        waveform=wave.astype(np.float16),
        spans=spans,
        labels=labels,
        predictions=rng.integers(0, len(CLASSES), n),
        clip_ids=np.array([f"clip{k}" for k in range(n)]),
        class_names=np.array(CLASSES),
        clip_seconds=np.array(CLIP_SECONDS),
        **arrays,
    )


def write_grid(
    out_dir: Path,
    samples: bool = True,
    metric: str = "acc",
    seeds: int = 2,
    latency: bool = False,
) -> Path:
    """results.csv (and run dirs) of the fake grid; returns the CSV path."""
    rows = []
    for student, (params, macs) in STUDENTS.items():
        for arm in ARMS:
            for seed in range(seeds):
                run_dir = out_dir / student / arm / f"seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                if samples and arm != "none":
                    write_samples(run_dir, seed, metric == "mAP", student=True)
                row = {
                    "student": student,
                    "arm": arm,
                    "group": "control" if Arm(arm).is_control else "method",
                    "seed": seed,
                    "metric": metric,
                    "test_score": SCORES[(student, arm)][seed],
                    "best_val": SCORES[(student, arm)][seed] + 0.01,
                    "params": params,
                    "macs": macs,
                    "student_attention_in_span": IN_SPAN[arm],
                    "student_attention_entropy": ENTROPY[arm],
                    "epochs": 3,
                    "wall_seconds": 12.5,
                    "run_dir": str(run_dir),
                }
                if latency:
                    row["latency_ms_b1"] = 0.05 * macs / 1e6 + 0.01 * seed
                rows.append(row)
    csv_path = out_dir / "results.csv"
    if latency:
        import csv

        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*RESULT_COLUMNS, "latency_ms_b1"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        write_rows(csv_path, rows)
    return csv_path
