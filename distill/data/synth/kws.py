"""`synth-kws`: a bank of 1 s spoken keywords in the Speech Commands layout, plus a noise bank.

Layout under the output root R (see docs/data.md): `R/<word>/<speaker>_nohash_<k>.wav`,
`R/validation_list.txt`, `R/testing_list.txt`, `R/_background_noise_/*.wav`, `R/noise_splits.csv`,
`R/manifest.csv` and `R/dataset.json`. Every clip is a pure function of the seed and its index.
"""

from __future__ import annotations

from distill.files import write_json

from distill.errors import BadValueError

import csv
import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distill.data.synth import common
from distill.data.synth.dsp import SAMPLE_RATE, active_span, peak_normalise, random_eq, random_reverb, write_wav
from distill.data.synth.noise import write_noise_bank
from distill.data.synth.tts import engine_report, espeak_voices, flite_voices, synthesize
from distill.data.synth.words import DEFAULT_UNKNOWN_WORDS, SPEECH_COMMANDS_V2, label_of

MANIFEST_COLUMNS = ("path", "label", "speaker", "split", "onset", "offset")
MANIFEST_COLUMNS += ("voice", "rate", "pitch", "gain_db")
CLIP = SAMPLE_RATE  # exactly 1.0 s
MARGIN = int(0.02 * SAMPLE_RATE)  # least silence before and after the speech
MAX_SPEEDUP = 1.6  # a phrase too long for 1 s is re-spoken at most this much faster
MAX_RATE = 450  # eSpeak NG's highest words-per-minute setting


@dataclass(frozen=True)
class Speaker:
    """One voice configuration; all of its clips land in the same split."""

    id: str
    voice: str
    rate: int
    pitch: int
    range_: int
    split: str


@dataclass(frozen=True)
class ClipTask:
    """One keyword clip to render into `root`."""

    root: str
    label: str
    text: str
    speaker: Speaker
    k: int
    seed: int
    word_index: int
    clip_index: int

    @property
    def path(self) -> str:
        return f"{self.label}/{self.speaker.id}_nohash_{self.k}.wav"


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """`n` distinct voice configurations, ~80/10/10 over train/validation/test."""
    if n < 3:
        raise BadValueError(f"--speakers must be >= 3 (one per split at least), got {n}")
    rng = common.rng_for(seed, 1)
    voices = espeak_voices() + list(flite_voices())
    picks = rng.choice(len(voices), size=n, replace=n > len(voices))
    order = rng.permutation(n)
    n_held = max(1, round(0.1 * n))
    split = {int(i): "validation" for i in order[:n_held]}
    split.update({int(i): "test" for i in order[n_held : 2 * n_held]})
    speakers, seen = [], set()
    for i, v in enumerate(picks):
        rate, pitch = int(rng.integers(100, 191)), int(rng.integers(15, 86))
        range_ = int(rng.integers(10, 91))
        key = f"{seed}|{i}|{voices[v]}|{rate}|{pitch}|{range_}"
        sid = hashlib.sha1(key.encode()).hexdigest()[:8]
        if sid in seen:  # a hash collision would merge two speakers; make it impossible
            raise RuntimeError(f"speaker id collision for {key}")
        seen.add(sid)
        speakers.append(Speaker(sid, voices[v], rate, pitch, range_, split.get(i, "train")))
    return speakers


def _speak_fitting(task: ClipTask, rng: np.random.Generator) -> tuple[np.ndarray, int, int, bool]:
    """Trimmed speech no longer than the clip allows, its rate, pitch and whether it was sped up;
    an empty array when even the fastest allowed rate does not fit."""
    spk = task.speaker
    rate = int(np.clip(spk.rate * rng.uniform(0.88, 1.12), 80, MAX_RATE))
    pitch = int(np.clip(spk.pitch + rng.integers(-6, 7), 0, 99))
    text = task.text + str(rng.choice(["", ".", "!", "?"]))
    tts_seed = int(rng.integers(2**31))
    limit, fastest = CLIP - 2 * MARGIN, min(MAX_RATE, int(rate * MAX_SPEEDUP))
    sped_up = False
    while True:
        x = synthesize(spk.voice, text, rate, pitch, spk.range_, tts_seed)
        start, end = active_span(x, threshold_db=-55.0, frame=80)
        speech = x[start:end]
        if len(speech) <= limit:
            return speech, rate, pitch, sped_up
        if rate >= fastest:
            return np.zeros(0, np.float32), rate, pitch, sped_up
        rate, sped_up = min(fastest, int(np.ceil(rate * len(speech) / limit * 1.05))), True


def render_clip(task: ClipTask) -> dict[str, object]:
    """Render and write one clip; returns its manifest row, or {'skipped': label} if too long."""
    rng = common.rng_for(task.seed, 2, task.word_index, task.clip_index)
    speech, rate, pitch, sped_up = _speak_fitting(task, rng)
    if len(speech) == 0:
        return {"skipped": task.label}
    start = int(rng.integers(MARGIN, CLIP - MARGIN - len(speech) + 1))
    clip = np.zeros(CLIP, np.float32)
    clip[start : start + len(speech)] = speech
    on, off = active_span(speech, threshold_db=-35.0, frame=80)
    clip, _eq = random_eq(clip, rng)
    clip, _rt60 = random_reverb(clip, rng)
    gain_db = float(rng.uniform(-20.0, -1.0))
    clip = peak_normalise(clip, gain_db)
    clip += rng.standard_normal(CLIP).astype(np.float32) * 10 ** (rng.uniform(-85, -70) / 20)
    write_wav(Path(task.root) / task.path, clip)
    spk = task.speaker
    return {
        "path": task.path,
        "label": task.label,
        "speaker": spk.id,
        "split": spk.split,
        "onset": f"{(start + on) / SAMPLE_RATE:.4f}",
        "offset": f"{(start + off) / SAMPLE_RATE:.4f}",
        "voice": spk.voice,
        "rate": rate,
        "pitch": pitch,
        "gain_db": f"{gain_db:.2f}",
        "sped_up": sped_up,
    }


def plan_clips(
    root: Path, texts: dict[str, str], counts: dict[str, int], speakers: list[Speaker], seed: int
) -> list[ClipTask]:
    """Every clip to render: for each word, speakers in a per-word shuffled round robin."""
    tasks = []
    for w, label in enumerate(texts):
        order = common.rng_for(seed, 3, w).permutation(len(speakers))
        for j in range(counts[label]):
            spk = speakers[int(order[j % len(speakers)])]
            tasks.append(
                ClipTask(str(root), label, texts[label], spk, j // len(speakers), seed, w, j)
            )
    return tasks


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
) -> dict[str, object]:
    """Generate the keyword bank and noise bank into `out` atomically; returns a summary."""
    t0 = time.perf_counter()
    workers = workers or common.default_workers()
    custom = words is not None
    keyword_texts = list(words) if custom else list(SPEECH_COMMANDS_V2)
    if unknown_words is None:
        unknown_words = list(DEFAULT_UNKNOWN_WORDS) if custom else []
    texts: dict[str, str] = {}
    for text in keyword_texts + list(unknown_words):
        label = label_of(text)
        if label in texts:
            raise BadValueError(f"word {text!r} given twice (as keyword or unknown word)")
        texts[label] = " ".join(text.split())
    if per_word < 1:
        raise BadValueError(f"--per-word must be >= 1, got {per_word}")
    per_unknown = per_word if per_unknown is None else per_unknown
    n_kw = len(keyword_texts)
    counts = {lab: per_word if i < n_kw else per_unknown for i, lab in enumerate(texts)}
    out = Path(out)
    partial = common.prepare_partial(out, overwrite)
    try:
        spk = make_speakers(speakers, seed)
        tasks = plan_clips(partial, texts, counts, spk, seed)
        rows, skipped = [], Counter()
        for row in common.parallel_map(render_clip, tasks, workers, "keywords"):
            if "skipped" in row:
                skipped[str(row["skipped"])] += 1
            else:
                rows.append(row)
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
            },
            "clips": len(rows),
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
    by_split = {s: Counter() for s in ("train", "validation", "test")}
    for r in rows:
        by_split[str(r["split"])][str(r["speaker"])] += 1
    return {
        "out": str(out),
        "clips": len(rows),
        "clips_per_split": {s: sum(c.values()) for s, c in by_split.items()},
        "speakers_per_split": {s: len(c) for s, c in by_split.items()},
        "voices": engine_report(),
        "sped_up": meta["sped_up"],
        "skipped_too_long": dict(skipped),
        "noise_files": Counter(r["split"] for r in noise_rows),
        "seconds": round(time.perf_counter() - t0, 1),
    }
