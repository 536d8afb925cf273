"""`synth-events`: an FSD50K-like multi-label sound-event set of synthesised clips.

Layout under the output root E (see docs/data.md): `E/FSD50K.dev_audio/<fname>.wav`,
`E/FSD50K.eval_audio/<fname>.wav`, `E/FSD50K.ground_truth/{dev,eval,vocabulary}.csv`,
`E/events_manifest.csv` (one row per event) and `E/dataset.json`. Classes: the synthesised
`EVENT_CLASSES`, then the `SF_CLASSES` a General MIDI SoundFont can play (`--soundfont`).
"""

from __future__ import annotations

import csv
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
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
from distill.data.synth.event_sources import EVENT_CLASSES, speech_with
from distill.data.synth.soundfont import FONT_DIRS, find_soundfonts, load_soundfont
from distill.data.synth.soundfont_events import SF_CLASSES, available_classes, render_sf_event
from distill.data.synth.voices import parse_tts
from distill.errors import BadValueError
from distill.files import write_json

ALL_CLASSES = tuple(EVENT_CLASSES)  # registry order is alphabetical and fixes the mids
SF_LABELS = tuple(SF_CLASSES)  # table order fixes their mids, /synth/sf/<nnn>
assert not set(ALL_CLASSES) & set(SF_LABELS), "SoundFont labels must not reuse synthesised ones"
SPLIT_DIRS = {"train": "FSD50K.dev_audio", "val": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def mid_of(label: str) -> str:
    """The stable invented machine id of a class, e.g. `/synth/007` or `/synth/sf/003`."""
    if label in SF_CLASSES:
        return f"/synth/sf/{SF_LABELS.index(label):03d}"
    return f"/synth/{ALL_CLASSES.index(label):03d}"


@dataclass(frozen=True)
class FontChoice:
    """The SoundFont `synth-events` uses (`path` None: none) and the classes it can play."""

    path: str | None
    status: str
    classes: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # label -> why


def resolve_soundfont(spec: str | Path | None = "auto") -> FontChoice:
    """The SoundFont for `--soundfont auto|none|PATH`: `auto` takes the first of
    `find_soundfonts()`, if any; a PATH that is missing or not a SoundFont is a `ValueError`."""
    if spec is None or str(spec) == "none":
        return FontChoice(None, "not used (--soundfont none)")
    if str(spec) == "auto":
        fonts = find_soundfonts()
        if not fonts:
            dirs = " or ".join(str(d) for d in FONT_DIRS)
            return FontChoice(None, f"not used: no *.sf2 under {dirs}")
        path = fonts[0]
    else:
        path = Path(spec)
        if not path.is_file():
            raise BadValueError(f"--soundfont {spec}: no such file")
    try:
        font = load_soundfont(str(path))
    except (ValueError, OSError) as err:
        raise BadValueError(f"--soundfont {path}: not a usable SoundFont ({err})") from err
    classes, skipped = available_classes(font)
    status = f"{path}: {len(classes)} SoundFont classes"
    if skipped:
        status += f", skipped {sorted(skipped)}"
    return FontChoice(str(path), status, tuple(classes), skipped)


def soundfont_report(spec: str | Path | None = "auto") -> str:
    """One line on the SoundFont `synth-events` would use and how many classes it gives."""
    return resolve_soundfont(spec).status


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
    soundfont: str | None = None  # font path for the SoundFont classes among `classes`
    voices: tuple = ()  # `--tts` voices for the Speech class (empty: eSpeak NG, as always)


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
        if label in SF_CLASSES:
            if task.soundfont is None:
                raise BadValueError(f"class {label} needs a SoundFont, but the task has none")
            x = np.asarray(render_sf_event(task.soundfont, label, rng), dtype=np.float64)
        else:
            source = EVENT_CLASSES[label]
            if label == "Speech" and task.voices:
                source = partial(speech_with, task.voices)
            x = np.asarray(source(rng), dtype=np.float64)
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
    write_json(root / "dataset.json", meta)


def synth_events(
    out: Path,
    clips: int = 3000,
    clip_seconds: float = 4.0,
    classes: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    soundfont: str | Path | None = "auto",
    tts: str | None = None,
) -> dict[str, object]:
    """Generate the event set into `out` atomically; returns a summary.

    The class list is `ALL_CLASSES` then the SoundFont classes the font of `soundfont`
    (`auto`, `none` or a path, see `resolve_soundfont`) can play; `classes` keeps its first K.
    Over 60 lines because it writes every generator option into dataset.json beside the steps;
    each step (classes, sources, rendering, noise, tables) is one call.
    """
    t0 = time.perf_counter()
    workers = workers or common.default_workers()
    font = resolve_soundfont(soundfont)
    entries = parse_tts(tts) if tts else []
    full = [*ALL_CLASSES, *font.classes]
    k = len(full) if classes is None else classes
    if not 1 <= k <= len(full):
        raise BadValueError(f"--classes must be in 1..{len(full)}, got {classes}")
    if clips < 3:
        raise BadValueError(f"--clips must be >= 3 (one per split at least), got {clips}")
    if not 0.5 <= clip_seconds <= 60:
        raise BadValueError(f"--clip-seconds must be in [0.5, 60], got {clip_seconds}")
    chosen = full[:k]
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
                font.path,
                tuple(v for e in entries for v in e.voices),
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
                "soundfont": asdict(font),
                "speech_tts": tts or "espeak (historical: a random eSpeak NG English voice)",
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
        "soundfont": font.status,
        "soundfont_classes": sum(c in SF_CLASSES for c in chosen),
        "seconds": round(time.perf_counter() - t0, 1),
    }
