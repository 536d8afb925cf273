"""`synth-kws`: a bank of 1 s spoken keywords in the Speech Commands layout, plus a noise bank.

Layout under the output root R (see docs/data.md): `R/<word>/<speaker>_nohash_<k>.wav`,
`R/validation_list.txt`, `R/testing_list.txt`, `R/_background_noise_/*.wav`, `R/noise_splits.csv`,
`R/manifest.csv` and `R/dataset.json` (and with the `room` augmentation `R/_rooms/`,
`R/rooms.csv`). Voices come from the `--tts` backends (`voices.py`), optionally with recorded
takes (`recordings.py`); every clip is a pure function of the seed and its index.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from distill.data.synth import common
from distill.data.synth.augment import DEFAULT_AUGMENT, parse_kinds
from distill.data.synth.dsp import SAMPLE_RATE
from distill.data.synth.kws_render import MANIFEST_COLUMNS, MAX_SPEEDUP, ClipTask, render_clip
from distill.data.synth.noise import write_noise_bank
from distill.data.synth.recordings import Take, scan
from distill.data.synth.rooms import write_rooms
from distill.data.synth.speakers import SPLITS, Speaker, make_speakers
from distill.data.synth.tts import engine_report
from distill.data.synth.voices import parse_tts, piper_models
from distill.data.synth.words import DEFAULT_UNKNOWN_WORDS, SPEECH_COMMANDS_V2, label_of
from distill.errors import BadValueError
from distill.files import write_json

__all__ = ["MANIFEST_COLUMNS", "ClipTask", "Speaker", "make_speakers", "render_clip", "synth_kws"]


def plan_clips(
    root: Path,
    texts: dict[str, str],
    counts: dict[str, int],
    speakers: list[Speaker],
    seed: int,
    augment: tuple[str, ...] = (),
    rooms: dict[str, tuple[str, ...]] | None = None,
) -> list[ClipTask]:
    """Every TTS clip to render: for each word, speakers in a per-word shuffled round robin."""
    tasks = []
    for w, label in enumerate(texts):
        order = common.rng_for(seed, 3, w).permutation(len(speakers))
        for j in range(counts[label]):
            spk = speakers[int(order[j % len(speakers)])]
            task = ClipTask(str(root), label, texts[label], spk, j // len(speakers), seed, w, j)
            tasks.append(_with_aug(task, augment, rooms))
    return tasks


def _with_aug(
    task: ClipTask, augment: tuple[str, ...], rooms: dict[str, tuple[str, ...]] | None
) -> ClipTask:
    if not augment:
        return task
    room_files = (rooms or {}).get(task.speaker.split) or tuple(
        f for files in (rooms or {}).values() for f in files
    )
    return ClipTask(**{**task.__dict__, "augment": augment, "rooms": tuple(sorted(room_files))})


def plan_recordings(
    root: Path,
    takes: list[Take],
    texts: dict[str, str],
    seed: int,
    copies: int,
    augment: tuple[str, ...] = (),
    rooms: dict[str, tuple[str, ...]] | None = None,
) -> list[ClipTask]:
    """A clip task per take and copy (each copy its own placement, EQ, level, augmentation)."""
    if copies < 1:
        raise BadValueError(f"--recording-copies must be >= 1, got {copies}")
    tasks, k = [], Counter()
    for i, take in enumerate(takes):
        spk = Speaker(
            take.speaker_id,
            f"recording:{take.speaker}",
            0,
            0,
            0,
            take.split,
            f"recording:{take.speaker}",
        )
        for c in range(copies):
            n = k[(take.label, spk.id)]
            k[(take.label, spk.id)] += 1
            task = ClipTask(
                str(root), take.label, texts[take.label], spk, n, seed, i, c, take=take.path
            )
            tasks.append(_with_aug(task, augment, rooms))
    return tasks


def _render(tasks: list[ClipTask], workers: int) -> tuple[list[dict], Counter]:
    """Rendered rows and skipped-too-long counts; unpronounceable words are one error."""
    rows, skipped, bad = [], Counter(), {}
    for row in common.parallel_map(render_clip, tasks, workers, "keywords"):
        if "skipped" in row:
            skipped[str(row["skipped"])] += 1
        elif "unpronounceable" in row:
            bad.setdefault(str(row["unpronounceable"]), {})[str(row["voice"])] = str(row["why"])
        else:
            rows.append(row)
    if bad:
        words = "; ".join(
            f"{w!r}: "
            + ", ".join(f"{v} ({why})" for v, why in sorted(vs.items())[:3])
            + (f" and {len(vs) - 3} more voices" if len(vs) > 3 else "")
            for w, vs in sorted(bad.items())
        )
        raise BadValueError(f"words a TTS backend cannot pronounce: {words}")
    return rows, skipped


def _write_tables(root: Path, rows: list[dict[str, object]], meta: dict) -> None:
    rows.sort(key=lambda r: str(r["path"]))
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        lines = [str(r["path"]) for r in rows if r["split"] == split]
        (root / name).write_text("".join(line + "\n" for line in lines))
    write_json(root / "dataset.json", meta)


def _texts(words: list[str] | None, unknown: list[str] | None) -> tuple[dict[str, str], int]:
    """label -> text of every word (keywords first) and the number of keywords."""
    custom = words is not None
    keyword_texts = list(words) if custom else list(SPEECH_COMMANDS_V2)
    if unknown is None:
        unknown = list(DEFAULT_UNKNOWN_WORDS) if custom else []
    texts: dict[str, str] = {}
    for text in keyword_texts + list(unknown):
        label = label_of(text)
        if label in texts:
            raise BadValueError(f"word {text!r} given twice (as keyword or unknown word)")
        texts[label] = " ".join(text.split())
    return texts, len(keyword_texts)


def _rooms(partial: Path, kinds: tuple, n: int, seed: int, workers: int, rir_dir: Path | None):
    """The room bank when `room` is asked for: rows and split -> room files."""
    if rir_dir is not None and "room" not in kinds:
        raise BadValueError("--rir-dir needs the room augmentation (--augment room or all)")
    if "room" not in kinds:
        return [], {}
    rows = write_rooms(partial, n, seed, workers, rir_dir)
    by_split = {s: tuple(str(r["file"]) for r in rows if r["split"] == s) for s in SPLITS}
    return rows, by_split


def _recording_meta(folder: Path | None, takes: list[Take], copies: int) -> dict | None:
    if folder is None:
        return None
    speakers: dict[str, dict] = {}
    for t in takes:
        info = speakers.setdefault(t.speaker_id, {"name": t.speaker, "split": t.split, "takes": 0})
        info["takes"] += 1
    return {"dir": str(folder), "copies": copies, "takes": len(takes), "speakers": speakers}


def synth_kws(
    out: Path,
    words: list[str] | None = None,
    unknown_words: list[str] | None = None,
    per_word: int = 250,
    per_unknown: int | None = None,
    speakers: int = 400,
    seed: int = 0,
    workers: int | None = None,
    noise_dir: Path | None = None,
    noise_seconds: float = 60.0,
    noise_per_type: int = 5,
    overwrite: bool = False,
    tts: str | None = None,
    augment: str | None = DEFAULT_AUGMENT,
    rooms: int = 40,
    rir_dir: Path | None = None,
    piper_mix: float = 0.5,
    recordings: Path | None = None,
    recording_copies: int = 1,
) -> dict[str, object]:
    """Generate the keyword bank and noise bank into `out` atomically; returns a summary.

    Over 60 lines because it writes every generator option into dataset.json beside the steps;
    each step (speakers, rooms, clip plan, rendering, noise bank, tables) is one call."""
    t0 = time.perf_counter()
    workers = workers or common.default_workers()
    texts, n_kw = _texts(words, unknown_words)
    if per_word < 1:
        raise BadValueError(f"--per-word must be >= 1, got {per_word}")
    per_unknown = per_word if per_unknown is None else per_unknown
    counts = {lab: per_word if i < n_kw else per_unknown for i, lab in enumerate(texts)}
    entries, kinds = parse_tts(tts), parse_kinds(augment)
    takes = scan(recordings, list(texts), seed) if recordings is not None else []
    out = Path(out)
    partial = common.prepare_partial(out, overwrite)
    try:
        spk = make_speakers(speakers, seed, entries, piper_mix)
        room_rows, room_files = _rooms(partial, kinds, rooms, seed, workers, rir_dir)
        tasks = plan_clips(partial, texts, counts, spk, seed, kinds, room_files)
        tasks += plan_recordings(partial, takes, texts, seed, recording_copies, kinds, room_files)
        rows, skipped = _render(tasks, workers)
        made = Counter(str(r["label"]) for r in rows)
        empty = [lab for lab in texts if made[lab] == 0]
        if empty:
            raise BadValueError(
                f"no clip of {empty} fits in 1 s even {MAX_SPEEDUP}x faster; shorten the phrases"
            )
        noise_rows = write_noise_bank(
            partial, noise_seconds, noise_per_type, seed, workers, noise_dir
        )
        labels = list(texts)
        meta = {
            "kind": "synth_kws",
            "sample_rate": SAMPLE_RATE,
            "words": labels[:n_kw],
            "unknown_words": labels[n_kw:],
            "texts": texts,
            "seed": seed,
            "version": 1,
            "generator": {
                "per_word": per_word,
                "per_unknown": per_unknown,
                "speakers": speakers,
                "noise_seconds": noise_seconds,
                "noise_per_type": noise_per_type,
                "noise_dir": str(noise_dir) if noise_dir else None,
                "engines": engine_report(),
                "tts": tts or "auto",
                "tts_entries": [
                    {"spec": e.spec, "weight": e.weight, "voices": len(e.voices)} for e in entries
                ],
                "piper_models": piper_models(entries),
                "piper_mix": piper_mix,
                "augment": list(kinds),
                "rooms": room_rows,
                "rir_dir": str(rir_dir) if rir_dir else None,
                "recordings": _recording_meta(recordings, takes, recording_copies),
            },
            "clips": len(rows),
            "clips_per_backend": dict(Counter(str(r["backend"]) for r in rows)),
            "sped_up": dict(Counter(str(r["label"]) for r in rows if r["sped_up"])),
            "skipped_too_long": dict(skipped),
            "noise": noise_rows,
            "speaker_table": [asdict(s) for s in spk],
        }
        _write_tables(partial, rows, meta)
        common.commit_partial(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return _summary(out, rows, meta, noise_rows, t0)


def _summary(out: Path, rows: list[dict], meta: dict, noise_rows: list, t0: float) -> dict:
    by_split = {s: Counter() for s in SPLITS}
    for r in rows:
        by_split[str(r["split"])][str(r["speaker"])] += 1
    return {
        "out": str(out),
        "clips": len(rows),
        "clips_per_split": {s: sum(c.values()) for s, c in by_split.items()},
        "speakers_per_split": {s: len(c) for s, c in by_split.items()},
        "clips_per_backend": meta["clips_per_backend"],
        "voices": meta["generator"]["engines"],
        "augment": meta["generator"]["augment"] or "none",
        "sped_up": meta["sped_up"],
        "skipped_too_long": meta["skipped_too_long"],
        "noise_files": Counter(r["split"] for r in noise_rows),
        "seconds": round(time.perf_counter() - t0, 1),
    }
