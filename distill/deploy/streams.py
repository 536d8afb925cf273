"""Long test streams for the wake-word metric, deterministic from a seed and cached on disk.

From a keyword bank in the Speech Commands layout (`distill data synth-kws`, or real Speech
Commands) a stream set holds, in one folder (docs/streaming.md, "Evaluate"):
- `neg_synth_NNN.wav`: negative audio, segments of the split's background noise (coloured
  noise, babble, music, hum, the user's noise) with the split's non-keyword words spoken into
  them (words that look like a keyword drawn more often), no keyword anywhere;
- `pos_NNN.wav`: the split's keyword clips, each inside a segment of the same negative audio;
- `neg_real_NNN.wav`: a folder of real recordings the user points to (`stream_audio.py`);
- `labels.csv` (stream, class, onset, offset of each keyword's speech, clip, snr_db),
  `words.csv` (every non-keyword word placed) and `streams.json` (index, written last).
A segment is a pure function of (seed, stream kind, segment index); audio is written segment by
segment, so hours of audio are never held in memory. The folder is reused when its fingerprint
(bank files, options, real folder listing) matches; a mismatch names what changed.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill.caches.fingerprint import DATA_FILES
from distill.caches.records import sha256_of_files, sha256_of_json
from distill.data.audio import AudioFileError, check_headers, load_audio
from distill.data.noise import NoiseBank
from distill.data.speech_commands import bank_words, read_manifest, split_files
from distill.data.synth.common import rng_for
from distill.deploy.stream_audio import PEAK, StreamInfo, StreamWriter, write_real
from distill.deploy.stream_eval import NON_KEYWORDS, Event
from distill.errors import BadValueError, MissingFileError, UsageError
from distill.files import lock_folder, write_json, write_text

VERSION = 1
INDEX, LABELS, WORDS = "streams.json", "labels.csv", "words.csv"
GUARD_SECONDS = 0.5  # no other word this close to a keyword clip
_NEG, _POS, _ORDER = 11, 12, 13  # random streams of the segments


@dataclass(frozen=True)
class StreamOptions:
    """What shapes a stream set (all of it is in the fingerprint)."""

    keywords: tuple[str, ...]
    split: str = "test"
    negative_hours: float = 1.0
    file_hours: float = 1.0  # longest stream file; longer material goes to the next file
    positives: int = 0  # keyword placements; 0: every keyword clip of the split once
    snr_db: tuple[float, float] = (-5.0, 15.0)  # of each word against its segment's background
    background_db: tuple[float, float] = (-45.0, -25.0)  # background RMS, dBFS
    segment_seconds: tuple[float, float] = (10.0, 30.0)  # negative segment lengths
    gap_seconds: tuple[float, float] = (1.0, 3.0)  # negative audio before and after a keyword
    word_rate: float = 0.3  # non-keyword words per second of segment (Poisson)
    soundalike_share: float = 0.5  # share of words drawn from the look-alikes, when any
    seed: int = 0
    sample_rate: int = 16000
    real_dir: str | None = None
    real_hours: float | None = None  # None: all of the real folder
    skip_bad_files: bool = False


@dataclass
class StreamSet:
    """A built stream set: its files, the keyword labels of each stream, its index."""

    root: Path
    streams: list[StreamInfo]
    events: dict[str, list[Event]]
    meta: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass(frozen=True)
class Clip:
    """A word clip of the bank (path relative to it) and its speech span (seconds in the clip)."""

    path: str
    word: str
    onset: float
    offset: float


def options_from_recipe(cfg: Any, **overrides: Any) -> StreamOptions:
    """Options for a recipe: its classes (less _unknown_/_silence_), SNRs, rate and seed."""
    from distill.data.speech_commands import config_classes

    kws = tuple(c for c in config_classes(cfg.data) if c not in NON_KEYWORDS)
    base = {"keywords": kws, "snr_db": tuple(float(x) for x in cfg.data.snr_db)}
    base |= {"sample_rate": int(cfg.data.sample_rate), "seed": int(cfg.data.seed)}
    return StreamOptions(**(base | overrides))


def check_options(opts: StreamOptions) -> None:
    """Refuse options that cannot make a stream set."""
    ranges = ("snr_db", "background_db", "segment_seconds", "gap_seconds")
    for key in ranges:
        lo, hi = getattr(opts, key)
        if not lo <= hi:
            raise BadValueError(f"stream option {key} must be [low, high], got {[lo, hi]}")
    if opts.segment_seconds[0] <= 0 or opts.gap_seconds[0] < 0 or opts.file_hours <= 0:
        raise BadValueError("segment_seconds must be > 0, gap_seconds >= 0, file_hours > 0")
    if opts.negative_hours < 0 or opts.positives < 0 or opts.word_rate < 0:
        raise BadValueError("negative_hours, positives and word_rate must be >= 0")
    if opts.background_db[1] > 0 or not 0 <= opts.soundalike_share <= 1:
        raise BadValueError("background_db must be <= 0 dBFS and soundalike_share in [0, 1]")
    if not opts.keywords:
        raise BadValueError("stream options need at least one keyword")


def bank_clips(root: Path, split: str, skip_bad_files: bool = False) -> list[Clip]:
    """Every clip of a split with its speech span (manifest.csv, else the whole clip)."""
    manifest = read_manifest(root)
    rels, _ = split_files(root, split, skip_bad_files)
    infos, _ = check_headers([str(root / r) for r in rels], skip_bad_files)
    clips = []
    for rel in rels:
        info = infos.get(str(root / rel))
        if info is None:
            continue
        row = (manifest or {}).get(rel)
        if manifest is not None and row is None:
            raise BadValueError(f"{rel} has no row in {root / 'manifest.csv'}")
        span = (float(row["onset"]), float(row["offset"])) if row else (0.0, info.seconds)
        clips.append(Clip(rel, rel.split("/")[0], *span))
    return clips


def soundalikes(words: list[str], keywords: tuple[str, ...], ratio: float = 0.5) -> list[str]:
    """Words that look like a keyword: difflib similarity >= `ratio`, or one contains the
    other (a spelling proxy for sounding alike; the bank decides which words exist)."""

    def close(w: str, k: str) -> bool:
        a, b = w.replace("_", " "), k.replace("_", " ")
        return a in b or b in a or difflib.SequenceMatcher(None, a, b).ratio() >= ratio

    return [w for w in words if any(close(w, k) for k in keywords)]


class _Material:
    """The split's noise, keyword clips and non-keyword word clips, at the stream rate."""

    def __init__(self, root: Path, opts: StreamOptions) -> None:
        words = bank_words(root)
        missing = [k for k in opts.keywords if k not in words]
        if missing:
            raise BadValueError(f"keywords {missing} have no folder in {root}; it has {words}")
        clips = bank_clips(root, opts.split, opts.skip_bad_files)
        self.root, self.opts, self.sr = root, opts, opts.sample_rate
        self.keywords = [c for c in clips if c.word in opts.keywords]
        self.words = [c for c in clips if c.word not in opts.keywords]
        names = sorted({c.word for c in self.words})
        self.lookalike_words = soundalikes(names, opts.keywords)
        self.lookalikes = [c for c in self.words if c.word in self.lookalike_words]
        self.noise = NoiseBank.from_root(root, opts.split, self.sr, opts.skip_bad_files)
        self._cache: dict[str, np.ndarray] = {}

    def audio(self, clip: Clip) -> np.ndarray:
        if clip.path not in self._cache:
            if len(self._cache) > 512:
                self._cache.clear()
            x = load_audio(self.root / clip.path, self.sr)
            self._cache[clip.path] = x.numpy().astype(np.float64)
        return self._cache[clip.path]

    def background(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` samples of one noise file of the split from a random start, looped in its region."""
        k, start = self.noise.choose(n, rng)
        a, b = self.noise.regions[k]
        region = self.noise.waves[k][a:b].numpy().astype(np.float64)
        reps = -(-(start - a + n) // len(region))
        return np.tile(region, reps)[start - a : start - a + n]

    def segment(
        self, rng: np.random.Generator, n: int, keyword: Clip | None = None, pre: int = 0
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """`n` samples of background with words (and `keyword` at sample `pre`); the rows of
        what was placed (kind, word, start/end sample, onset/offset seconds, snr_db, clip)."""
        bg = self.background(n, rng)
        level = 10 ** (rng.uniform(*self.opts.background_db) / 20)
        bg *= level / max(float(np.sqrt(np.mean(bg**2))), 1e-12)
        rows: list[dict[str, Any]] = []
        busy = []  # sample intervals no further word may overlap
        if keyword is not None:
            self._place(bg, keyword, pre, level, rng, rows, "keyword")
            guard = round(GUARD_SECONDS * self.sr)
            busy.append((rows[-1]["start"] - guard, rows[-1]["end"] + guard))
        for _ in range(int(rng.poisson(self.opts.word_rate * n / self.sr)) if self.words else 0):
            alike = bool(self.lookalikes) and rng.random() < self.opts.soundalike_share
            pool = self.lookalikes if alike else self.words
            clip = pool[int(rng.integers(len(pool)))]
            length = len(self.audio(clip))
            pos = int(rng.integers(0, max(1, n - length + 1)))
            if length <= n and not any(pos < b and a < pos + length for a, b in busy):
                self._place(bg, clip, pos, level, rng, rows, "word")
                busy.append((pos, pos + length))
        peak = float(np.max(np.abs(bg))) if n else 0.0
        if peak > PEAK:
            bg *= PEAK / peak
        return bg, rows

    def _place(self, bg, clip, pos, level, rng, rows, kind) -> None:  # noqa: ANN001
        """Add `clip` at sample `pos` so its speech is `snr` dB above the background `level`."""
        x = self.audio(clip)
        a = int(clip.onset * self.sr)
        b = max(int(clip.offset * self.sr), a + 1)
        p_speech = float(np.mean(x[a:b] ** 2)) if b <= len(x) else float(np.mean(x**2))
        if not p_speech > 0:
            raise AudioFileError(f"{clip.path}: silent speech span {clip.onset}-{clip.offset} s")
        snr = float(rng.uniform(*self.opts.snr_db))
        bg[pos : pos + len(x)] += x * np.sqrt(level**2 * 10 ** (snr / 10) / p_speech)
        rows.append(
            {
                "kind": kind,
                "word": clip.word,
                "start": pos,
                "end": pos + len(x),
                "onset": pos / self.sr + clip.onset,
                "offset": pos / self.sr + clip.offset,
                "snr_db": round(snr, 3),
                "clip": clip.path,
            }
        )


def _negatives(mat: _Material, out: Path, opts: StreamOptions) -> tuple[list[StreamInfo], list]:
    sr = opts.sample_rate
    total, made, i, rows = round(opts.negative_hours * 3600 * sr), 0, 0, []
    limit = round(opts.file_hours * 3600 * sr)
    with StreamWriter(out, "neg_synth", "negative", "synthetic", sr, limit) as w:
        while made < total:
            rng = rng_for(opts.seed, _NEG, i)
            n = min(max(1, round(rng.uniform(*opts.segment_seconds) * sr)), total - made, w.room())
            block, placed = mat.segment(rng, n)
            name, t0 = w.write(block)
            rows += [
                {"stream": name, **r, "onset": t0 + r["onset"], "offset": t0 + r["offset"]}
                for r in placed
            ]
            made, i = made + n, i + 1
    return w.streams, rows


def _positives(mat: _Material, out: Path, opts: StreamOptions) -> tuple[list[StreamInfo], list]:
    if not mat.keywords:
        raise BadValueError(f"no clip of the keywords {list(opts.keywords)} in split {opts.split}")
    sr, count = opts.sample_rate, opts.positives or len(mat.keywords)
    order = rng_for(opts.seed, _ORDER).permutation(len(mat.keywords))
    rows, limit = [], round(opts.file_hours * 3600 * sr)
    with StreamWriter(out, "pos", "positive", "synthetic", sr, limit) as w:
        for j in range(count):
            clip = mat.keywords[int(order[j % len(order)])]
            rng = rng_for(opts.seed, _POS, j)
            pre, post = (round(rng.uniform(*opts.gap_seconds) * sr) for _ in range(2))
            block, placed = mat.segment(rng, pre + len(mat.audio(clip)) + post, clip, pre)
            name, t0 = w.write(block)
            rows += [
                {"stream": name, **r, "onset": t0 + r["onset"], "offset": t0 + r["offset"]}
                for r in placed
            ]
    return w.streams, rows


def fingerprint(bank: Path, opts: StreamOptions) -> dict[str, str]:
    """What the streams depend on: the bank's listing files, the options, the real folder
    (names, sizes and modification times; its audio is not read)."""
    bank = Path(bank)
    listing = sorted(f"{p.parent.name}/{p.name}:{p.stat().st_size}" for p in bank.glob("*/*.wav"))
    shape = {k: v for k, v in asdict(opts).items() if k not in ("real_dir", "real_hours")}
    real = None
    if opts.real_dir:
        root = Path(opts.real_dir)
        real = [
            (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]
    return {
        "version": str(VERSION),
        "bank": sha256_of_json([sha256_of_files(bank / f for f in DATA_FILES), listing]),
        "streams": sha256_of_json(shape),
        "real": sha256_of_json([real, opts.real_hours]),
    }


LOCK_WAIT_SECONDS = 3600.0  # a build of many hours of streams takes minutes


def build_streams(
    bank: str | Path, out: str | Path, opts: StreamOptions, overwrite: bool = False
) -> StreamSet:
    """Build (or reuse, when its fingerprint matches) the stream set of `bank` in `out`."""
    bank, out = Path(bank), Path(out)
    check_options(opts)
    fp = fingerprint(bank, opts)
    # another process building or checking the same set: wait for it, then reuse what it built
    with lock_folder(out, "stream folder", wait_seconds=LOCK_WAIT_SECONDS):
        old = _read_index(out)
        if old is not None and old.get("fingerprint") == fp and _complete(out, old):
            return load_stream_set(out, cached=True)
        changed = [k for k in fp if (old or {}).get("fingerprint", {}).get(k) != fp[k]]
        if old is not None and changed and not overwrite:
            raise UsageError(
                f"{out} holds streams built with other settings (changed: {', '.join(changed)}); "
                "pass overwrite=True (--overwrite) or use another folder"
            )
        (out / INDEX).unlink(missing_ok=True)
        for s in (old or {}).get("streams", []):
            (out / s["file"]).unlink(missing_ok=True)
        return _build(bank, out, opts, fp)


def _build(bank: Path, out: Path, opts: StreamOptions, fp: dict[str, str]) -> StreamSet:
    mat = _Material(bank, opts)
    streams, words = _negatives(mat, out, opts) if opts.negative_hours > 0 else ([], [])
    pos, placed = _positives(mat, out, opts)
    streams += pos
    words += [r for r in placed if r["kind"] == "word"]
    words.sort(key=lambda r: (r["stream"], r["onset"]))
    real = None
    if opts.real_dir:
        sr = opts.sample_rate
        total = None if opts.real_hours is None else round(opts.real_hours * 3600 * sr)
        limit = round(opts.file_hours * 3600 * sr)
        real_streams, real = write_real(
            out, Path(opts.real_dir), opts.keywords, sr, limit, total, opts.skip_bad_files
        )
        streams += real_streams
    labels = [r for r in placed if r["kind"] == "keyword"]
    cols = ["stream", "word", "onset", "offset", "snr_db", "clip"]
    write_text(out / LABELS, _csv(labels, cols, rename={"word": "class"}))
    write_text(out / WORDS, _csv(words, cols))
    meta = {
        "version": VERSION,
        "fingerprint": fp,
        "bank": str(bank),
        "options": asdict(opts),
        "sample_rate": opts.sample_rate,
        "streams": [
            {
                "name": s.name,
                "file": s.path.name,
                "kind": s.kind,
                "source": s.source,
                "seconds": s.seconds,
            }
            for s in streams
        ],
        "non_keyword_words": sorted({c.word for c in mat.words}),
        "lookalike_words": mat.lookalike_words,
        "real": real,
    }
    write_json(out / INDEX, meta)
    return load_stream_set(out)


def _csv(rows: list[dict[str, Any]], cols: list[str], rename: dict[str, str] | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([(rename or {}).get(c, c) for c in cols])
    for r in rows:
        writer.writerow([f"{r[c]:.4f}" if c in ("onset", "offset") else r[c] for c in cols])
    return buf.getvalue()


def _read_index(out: Path) -> dict[str, Any] | None:
    path = out / INDEX
    return json.loads(path.read_text()) if path.is_file() else None


def _complete(out: Path, meta: dict[str, Any]) -> bool:
    return all((out / s["file"]).is_file() for s in meta["streams"]) and (out / LABELS).is_file()


def load_stream_set(out: str | Path, cached: bool = False) -> StreamSet:
    """Read a built stream set: its index, stream files and keyword labels."""
    out = Path(out)
    meta = _read_index(out)
    if meta is None:
        raise MissingFileError(f"{out / INDEX} does not exist: build the streams first")
    streams = [
        StreamInfo(s["name"], out / s["file"], s["kind"], s["source"], s["seconds"])
        for s in meta["streams"]
    ]
    events: dict[str, list[Event]] = {s.name: [] for s in streams}
    with open(out / LABELS, newline="") as fh:
        for row in csv.DictReader(fh):
            ev = Event(row["class"], float(row["onset"]), float(row["offset"]))
            events[row["stream"]].append(ev)
    return StreamSet(out, streams, events, meta, cached)


__all__ = [
    "Clip",
    "StreamInfo",
    "StreamOptions",
    "StreamSet",
    "bank_clips",
    "build_streams",
    "check_options",
    "fingerprint",
    "load_stream_set",
    "options_from_recipe",
    "soundalikes",
]
