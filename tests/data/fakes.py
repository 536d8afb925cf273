"""Tiny datasets written with soundfile in the real on-disk layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, freq: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, sr: int, seed: int, amp: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(round(seconds * sr)))).astype(np.float32)


def make_speech_commands(
    root: Path,
    words: list[str],
    speakers: list[str],
    sr: int = 16000,
    val_speakers: int = 1,
    test_speakers: int = 1,
    noise_files: int = 2,
    noise_seconds: float = 10.0,
    short_every: int = 3,
) -> dict[str, list[str]]:
    """Speech Commands layout; the last speakers go to test, the ones before to validation.
    Every `short_every`-th clip lasts 0.8 s, the rest 1 s. Returns split -> relative paths."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    n_train = len(speakers) - val_speakers - test_speakers
    count = 0
    for wi, word in enumerate(words):
        (root / word).mkdir(exist_ok=True)
        for si, spk in enumerate(speakers):
            rel = f"{word}/{spk}_nohash_0.wav"
            seconds = 0.8 if count % short_every == 0 else 1.0
            sf.write(root / rel, tone(seconds, 300 + 40 * wi, sr), sr)
            split = (
                "train" if si < n_train else "validation" if si < n_train + val_speakers else "test"
            )
            splits[split].append(rel)
            count += 1
    (root / "validation_list.txt").write_text("\n".join(splits["validation"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(splits["test"]) + "\n")
    if noise_files:
        (root / "_background_noise_").mkdir(exist_ok=True)
        for k in range(noise_files):
            sf.write(
                root / "_background_noise_" / f"noise{k}.wav", noise(noise_seconds, sr, seed=k), sr
            )
    return splits


def make_synth_kws_bank(
    root: Path,
    words: list[str],
    speakers: list[str],
    sr: int = 16000,
    onset: float = 0.2,
    offset: float = 0.7,
    noise_per_split: int = 1,
    noise_seconds: float = 10.0,
) -> dict[str, list[str]]:
    """A synthetic bank: SC layout + manifest.csv (speech in [onset, offset] of each 1 s clip),
    noise_splits.csv (one noise file per split and `noise_per_split`), dataset.json."""
    splits = make_speech_commands(root, words, speakers, sr, noise_files=0, short_every=10**9)
    rows = []
    for split, rels in splits.items():
        for rel in rels:
            wave = np.zeros(sr, dtype=np.float32)
            a, b = int(onset * sr), int(offset * sr)
            word_index = words.index(rel.split("/")[0])
            wave[a:b] = tone((b - a) / sr, 300 + 40 * word_index, sr)
            sf.write(root / rel, wave, sr)
            speaker = rel.split("/")[1].split("_nohash_")[0]
            rows.append([rel, rel.split("/")[0], speaker, split, onset, offset, "v", 150, 50, 0])
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
    noise_rows = []
    for si, split in enumerate(("train", "validation", "test")):
        for k in range(noise_per_split):
            name = f"{split}_noise{k}.wav"
            sf.write(
                root / "_background_noise_" / name, noise(noise_seconds, sr, seed=10 * si + k), sr
            )
            noise_rows.append([name, split])
    with open(root / "noise_splits.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "split"])
        w.writerows(noise_rows)
    (root / "dataset.json").write_text(json.dumps({"kind": "synth_kws"}))
    return splits


def make_fsd50k(
    root: Path,
    vocab: list[str],
    dev: list[tuple[str, list[str], str, float]],
    eval_: list[tuple[str, list[str], float]],
    sr: int = 44100,
    events: dict[str, list[tuple[float, float]]] | None = None,
) -> None:
    """FSD50K layout. `dev`: (fname, labels, split train|val, seconds); `eval_`: (fname,
    labels, seconds); `events`: fname -> [(onset, offset)] written to events_manifest.csv."""
    gt = root / "FSD50K.ground_truth"
    for d in (gt, root / "FSD50K.dev_audio", root / "FSD50K.eval_audio"):
        d.mkdir(parents=True, exist_ok=True)
    with open(gt / "vocabulary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([i, lab, f"/m/{i:04d}"] for i, lab in enumerate(vocab))
    with open(gt / "dev.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fname", "labels", "mids", "split"])
        for k, (fname, labels, split, seconds) in enumerate(dev):
            w.writerow([fname, ",".join(labels), "", split])
            sf.write(root / "FSD50K.dev_audio" / f"{fname}.wav", noise(seconds, sr, k), sr)
    with open(gt / "eval.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fname", "labels", "mids"])
        for k, (fname, labels, seconds) in enumerate(eval_):
            w.writerow([fname, ",".join(labels), ""])
            sf.write(root / "FSD50K.eval_audio" / f"{fname}.wav", noise(seconds, sr, 100 + k), sr)
    if events is not None:
        split_of = {f: s for f, _, s, _ in dev} | {f: "test" for f, _, _ in eval_}
        with open(root / "events_manifest.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["fname", "split", "label", "onset", "offset"])
            for fname, evs in events.items():
                for a, b in evs:
                    w.writerow([fname, split_of[fname], "x", a, b])
