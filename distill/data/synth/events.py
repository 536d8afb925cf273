"""`synth-events`: an FSD50K-like multi-label sound-event set of synthesised clips.

Layout under the output root E (see docs/data.md): `E/FSD50K.dev_audio/<fname>.wav`,
`E/FSD50K.eval_audio/<fname>.wav`, `E/FSD50K.ground_truth/{dev,eval,vocabulary}.csv`,
`E/events_manifest.csv` (one row per event) and `E/dataset.json`.
"""

from __future__ import annotations

import csv
import glob
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data.synth import common
from distill.data.synth.dsp import (
    SAMPLE_RATE,
    active_span,
    coloured_noise,
    random_eq,
    random_reverb,
    write_wav,
)
from distill.data.synth.event_sources import EVENT_CLASSES

ALL_CLASSES = tuple(EVENT_CLASSES)  # registry order is alphabetical and fixes the mids
SPLIT_DIRS = {"train": "FSD50K.dev_audio", "val": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def mid_of(label: str) -> str:
    """The stable invented machine id of a class, e.g. `/synth/007`."""
    return f"/synth/{ALL_CLASSES.index(label):03d}"


def soundfont_report() -> str:
    """What the machine offers for sampled instruments (fluidsynth + a General MIDI SoundFont)."""
    fonts = sorted(glob.glob("/usr/share/sounds/sf2/*.sf2"))
    if shutil.which("fluidsynth") is None or not fonts:
        return (
            f"not used: fluidsynth {'found' if shutil.which('fluidsynth') else 'not installed'}, "
            f"{len(fonts)} SoundFont(s) under /usr/share/sounds/sf2"
        )
    return f"found fluidsynth and {fonts}, but rendering SoundFont instruments is not implemented"


@dataclass(frozen=True)
class EventClipTask:
    """One clip to render into `root`."""

    root: str
    fname: int
    index: int
    split: str
    seconds: float
    classes: tuple[str, ...]
    seed: int


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = str(rng.choice(["white", "pink", "brown", "quiet"]))
    level_db = -80.0 if kind == "quiet" else rng.uniform(-60, -35)
    noise = coloured_noise(n, "white" if kind == "quiet" else kind, rng)
    return noise * 10 ** (level_db / 20)


def render_event_clip(task: EventClipTask) -> dict[str, object]:
    """Render and write one clip; returns its fname, split, labels and events."""
    rng = common.rng_for(task.seed, 4, task.index)
    n = int(round(task.seconds * SAMPLE_RATE))
    mix = np.zeros(n)
    events = []
    for _ in range(int(rng.integers(1, 6))):
        label = str(rng.choice(task.classes))
        x = np.asarray(EVENT_CLASSES[label](rng), dtype=np.float64)
        start, end = active_span(x, threshold_db=-40.0, frame=80)
        x = x[start : min(end, start + n)]
        x, _ = random_eq(x.astype(np.float32), rng)
        x = x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(-24, -3) / 20)
        at = int(rng.integers(0, n - len(x) + 1))
        mix[at : at + len(x)] += x
        on, off = active_span(x, threshold_db=-40.0, frame=80)
        events.append((label, (at + on) / SAMPLE_RATE, (at + max(off, on + 1)) / SAMPLE_RATE))
    mix, _ = random_reverb(mix.astype(np.float32), rng)
    mix = mix + _background(n, rng)
    peak = float(np.max(np.abs(mix)))
    if peak > 0.95:
        mix *= 0.95 / peak
    write_wav(Path(task.root) / SPLIT_DIRS[task.split] / f"{task.fname}.wav", mix)
    labels = sorted({e[0] for e in events})
    return {"fname": task.fname, "split": task.split, "labels": labels, "events": events}


def _write_tables(root: Path, rows: list[dict], classes: list[str], meta: dict) -> None:
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    with open(gt / "vocabulary.csv", "w", newline="") as f:
        csv.writer(f).writerows([i, lab, mid_of(lab)] for i, lab in enumerate(classes))
    with (
        open(gt / "dev.csv", "w", newline="") as f_dev,
        open(gt / "eval.csv", "w", newline="") as f_ev,
    ):
        dev, ev = csv.writer(f_dev), csv.writer(f_ev)
        dev.writerow(["fname", "labels", "mids", "split"])
        ev.writerow(["fname", "labels", "mids"])
        for r in rows:
            cells = [r["fname"], ",".join(r["labels"]), ",".join(mid_of(x) for x in r["labels"])]
            (ev.writerow(cells) if r["split"] == "eval" else dev.writerow(cells + [r["split"]]))
    with open(root / "events_manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fname", "split", "label", "onset", "offset"])
        for r in rows:
            for label, on, off in r["events"]:
                writer.writerow([r["fname"], r["split"], label, f"{on:.4f}", f"{off:.4f}"])
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def synth_events(
    out: Path,
    clips: int = 3000,
    clip_seconds: float = 4.0,
    classes: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict[str, object]:
    """Generate the event set into `out` atomically; returns a summary."""
    t0 = time.perf_counter()
    workers = workers or common.default_workers()
    k = len(ALL_CLASSES) if classes is None else classes
    if not 1 <= k <= len(ALL_CLASSES):
        raise ValueError(f"--classes must be in 1..{len(ALL_CLASSES)}, got {classes}")
    if clips < 3:
        raise ValueError(f"--clips must be >= 3 (one per split at least), got {clips}")
    if not 0.5 <= clip_seconds <= 60:
        raise ValueError(f"--clip-seconds must be in [0.5, 60], got {clip_seconds}")
    chosen = list(ALL_CLASSES[:k])
    order = common.rng_for(seed, 5).permutation(clips)
    n_eval, n_val = max(1, round(0.2 * clips)), max(1, round(0.1 * clips))
    split = {int(i): "eval" for i in order[:n_eval]}
    split.update({int(i): "val" for i in order[n_eval : n_eval + n_val]})
    out = Path(out)
    partial = common.prepare_partial(out, overwrite)
    try:
        tasks = [
            EventClipTask(
                str(partial),
                100000 + i,
                i,
                split.get(i, "train"),
                clip_seconds,
                tuple(chosen),
                seed,
            )
            for i in range(clips)
        ]
        rows = list(common.parallel_map(render_event_clip, tasks, workers, "events"))
        meta = {
            "kind": "synth_events",
            "sample_rate": SAMPLE_RATE,
            "classes": chosen,
            "mids": {lab: mid_of(lab) for lab in chosen},
            "seed": seed,
            "version": 1,
            "generator": {
                "clips": clips,
                "clip_seconds": clip_seconds,
                "classes": k,
                "soundfont": soundfont_report(),
            },
        }
        _write_tables(partial, rows, chosen, meta)
        common.commit_partial(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    label_counts = Counter(lab for r in rows for lab in r["labels"])
    return {
        "out": str(out),
        "clips": len(rows),
        "clips_per_split": dict(Counter(r["split"] for r in rows)),
        "classes": k,
        "events": sum(len(r["events"]) for r in rows),
        "rarest_class": min((label_counts[c], c) for c in chosen),
        "soundfont": soundfont_report(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
