"""Long test streams: deterministic, cached, labels where the keywords are, real negative folders;
and the wake-word metric end to end with a toy tone detector."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.data.audio import AudioFileError
from distill.deploy.stream_report import evaluate_stream_set
from distill.deploy.streams import StreamOptions, build_streams, load_stream_set, soundalikes
from distill.errors import BadValueError, MissingFileError, UsageError

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat"]
KEYWORDS = tuple(WORDS[:10])  # the tiny bank's words are tones at 300 + 40 * index Hz
CLASSES = [*KEYWORDS, "_unknown_", "_silence_"]
SR = 16000


def options(**kw) -> StreamOptions:
    base = {"keywords": KEYWORDS, "negative_hours": 20 / 3600, "segment_seconds": (4.0, 8.0)}
    return StreamOptions(**(base | kw))


def tone_scorer(path: Path, win: float = 0.25, hop: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A toy detector read in blocks: per hop, each keyword's share of the window's spectral
    energy near its tone; the rest goes to _unknown_."""
    w, h = int(win * SR), int(hop * SR)
    freqs = np.fft.rfftfreq(w, 1 / SR)
    bands = [np.abs(freqs - (300 + 40 * i)) <= 12 for i in range(len(KEYWORDS))]
    times, post = [], []
    for i, block in enumerate(sf.blocks(str(path), blocksize=w, overlap=w - h, dtype="float64")):
        if len(block) < w:
            break
        energy = np.abs(np.fft.rfft(block * np.hanning(w))) ** 2
        share = np.array([energy[b].sum() for b in bands]) / (energy.sum() + 1e-12)
        post.append([*share, max(0.0, 1 - share.sum()), 0.0])
        times.append((i * h + w) / SR)
    return np.array(times), np.array(post).reshape(-1, len(CLASSES))


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".wav", ".csv")
    }


def test_same_seed_same_bytes(tiny_kws_bank: Path, tmp_path: Path) -> None:
    a = build_streams(tiny_kws_bank, tmp_path / "a", options())
    b = build_streams(tiny_kws_bank, tmp_path / "b", options())
    assert files_of(a.root) == files_of(b.root)
    assert {s.name for s in a.streams} == {"neg_synth_000", "pos_000"}
    assert a.streams[0].seconds == pytest.approx(20.0)
    c = build_streams(tiny_kws_bank, tmp_path / "c", options(seed=1))
    assert files_of(c.root)["neg_synth_000.wav"] != files_of(a.root)["neg_synth_000.wav"]


def test_labels_are_where_the_keywords_are(tiny_kws_bank: Path, tmp_path: Path) -> None:
    opts = options(snr_db=(20.0, 20.0), background_db=(-40.0, -40.0))
    built = build_streams(tiny_kws_bank, tmp_path / "s", opts)
    events = built.events["pos_000"]
    assert sorted(e.cls for e in events) == sorted(KEYWORDS)  # every test clip once
    assert all(not built.events[s.name] for s in built.streams if s.kind == "negative")
    x, sr = sf.read(str(built.root / "pos_000.wav"), dtype="float64")
    background = 10 ** (-40 / 20)
    for ev in events:
        span = x[int(ev.onset * sr) : int(ev.offset * sr)]
        before = x[int((ev.onset - 0.5) * sr) : int((ev.onset - 0.05) * sr)]
        spectrum = np.abs(np.fft.rfft(span))
        peak_hz = np.fft.rfftfreq(len(span), 1 / sr)[np.argmax(spectrum)]
        assert abs(peak_hz - (300 + 40 * KEYWORDS.index(ev.cls))) < 3, ev
        # the span holds the keyword at the labelled SNR above the background; before it, none
        snr = 10 * np.log10(np.mean(span**2) / background**2 - 1)
        assert snr == pytest.approx(20.0, abs=0.5), ev
        assert np.sqrt(np.mean(before**2)) == pytest.approx(background, rel=0.15), ev
    with open(built.root / "labels.csv", newline="") as fh:
        assert [float(r["snr_db"]) for r in csv.DictReader(fh)] == [20.0] * 10


def test_negatives_hold_words_but_no_keyword(tiny_kws_bank: Path, tmp_path: Path) -> None:
    built = build_streams(tiny_kws_bank, tmp_path / "s", options(word_rate=1.0))
    with open(built.root / "words.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["word"] for r in rows} == {"cat"}
    assert built.meta["non_keyword_words"] == ["cat"]
    times, post = tone_scorer(built.root / "neg_synth_000.wav")
    assert post[:, : len(KEYWORDS)].max() < 0.2  # no keyword tone anywhere in the negatives


def test_options_from_a_recipe(tiny_kws_bank: Path, tmp_path: Path) -> None:
    from distill.deploy.streams import options_from_recipe
    from tests.helpers.recipes import tiny_recipe

    cfg = tiny_recipe(tiny_kws_bank, tmp_path)
    cfg.data.snr_db = [0.0, 12.0]
    opts = options_from_recipe(cfg, negative_hours=2.0)
    assert opts.keywords == KEYWORDS  # classes "12" less _unknown_ and _silence_
    assert opts.snr_db == (0.0, 12.0) and opts.negative_hours == 2.0 and opts.sample_rate == SR


def test_soundalikes_by_spelling() -> None:
    found = soundalikes(["know", "one", "cat", "eight", "town"], ("no", "on", "right", "down"))
    assert found == ["know", "one", "eight", "town"]


def test_detections_found_at_the_keyword_times(tiny_kws_bank: Path, tmp_path: Path) -> None:
    opts = options(negative_hours=60 / 3600, snr_db=(10.0, 20.0), positives=15)
    built = build_streams(tiny_kws_bank, tmp_path / "s", opts)
    assert len(built.events["pos_000"]) == 15  # 10 clips, then cycled
    res = evaluate_stream_set(built, tone_scorer, CLASSES, thresholds=[0.2, 0.5, 0.95])
    point = res["at_fa_per_hour"]["0.5"]["pooled"]
    assert point["threshold"] in (0.2, 0.5) and point["false_accepts"] == 0
    assert point["frr"] == 0.0 and point["hits"] == 15
    # the 0.25 s window sees the tone before the word ends: a detection inside the span
    assert -0.5 < point["latency_median_s"] < 0.0
    assert res["negative_hours"] == pytest.approx((60 + built.streams[1].seconds - 15 * 1.0) / 3600)


def test_cache_reuse_and_changed_settings(tiny_kws_bank: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    first = build_streams(tiny_kws_bank, out, options())
    stamp = (out / "neg_synth_000.wav").stat().st_mtime_ns
    again = build_streams(tiny_kws_bank, out, options())
    assert again.cached and (out / "neg_synth_000.wav").stat().st_mtime_ns == stamp
    assert load_stream_set(out).events == first.events
    with pytest.raises(UsageError, match="changed: streams"):
        build_streams(tiny_kws_bank, out, options(seed=3))
    redone = build_streams(tiny_kws_bank, out, options(seed=3), overwrite=True)
    assert (
        not redone.cached and json.loads((out / "streams.json").read_text())["options"]["seed"] == 3
    )


def test_very_short_and_no_negative_streams(tiny_kws_bank: Path, tmp_path: Path) -> None:
    short = build_streams(tiny_kws_bank, tmp_path / "a", options(negative_hours=0.2 / 3600))
    assert short.streams[0].seconds == pytest.approx(0.2)
    assert sf.info(str(short.streams[0].path)).frames == int(0.2 * SR)
    none = build_streams(tiny_kws_bank, tmp_path / "b", options(negative_hours=0.0, positives=2))
    assert [s.kind for s in none.streams] == ["positive"]


def test_bad_options_and_keywords(tiny_kws_bank: Path, tmp_path: Path) -> None:
    with pytest.raises(BadValueError, match="have no folder"):
        build_streams(tiny_kws_bank, tmp_path / "a", options(keywords=("marvin",)))
    with pytest.raises(BadValueError, match="snr_db"):
        build_streams(tiny_kws_bank, tmp_path / "b", options(snr_db=(10.0, 0.0)))


def test_real_negative_folder(tiny_kws_bank: Path, tmp_path: Path) -> None:
    real = tmp_path / "LibriSpeech" / "19" / "198"
    real.mkdir(parents=True)
    t = np.arange(int(1.5 * 44100)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1)
    sf.write(real / "19-198-0000.flac", stereo, 44100)
    sf.write(real / "19-198-0001.flac", stereo, 44100)
    (real / "19-198.trans.txt").write_text("19-198-0000 HE SAID YES TO HER\n19-198-0001 A DOG\n")
    opts = options(real_dir=str(tmp_path / "LibriSpeech"), negative_hours=0.0, positives=1)
    built = build_streams(tiny_kws_bank, tmp_path / "s", opts)
    (stream,) = [s for s in built.streams if s.source == "real"]
    assert stream.kind == "negative" and stream.seconds == pytest.approx(1.5)
    assert built.meta["real"]["excluded_saying_a_keyword"] == ["19/198/19-198-0000.flac"]
    x, sr = sf.read(str(stream.path))
    assert sr == SR and x.ndim == 1 and np.max(np.abs(x)) == pytest.approx(0.3, abs=0.01)


def test_real_folder_without_audio_is_an_error(tiny_kws_bank: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(MissingFileError, match="holds no audio"):
        build_streams(tiny_kws_bank, tmp_path / "s", options(real_dir=str(empty)))
    with pytest.raises(MissingFileError, match="does not exist"):
        build_streams(tiny_kws_bank, tmp_path / "s", options(real_dir=str(tmp_path / "nope")))


def test_real_audio_with_nan_is_refused(tiny_kws_bank: Path, tmp_path: Path) -> None:
    folder = tmp_path / "real"
    folder.mkdir()
    x = np.zeros(SR, np.float32)
    x[100] = np.nan
    sf.write(folder / "bad.wav", x, SR, subtype="FLOAT")
    opts = replace(options(), real_dir=str(folder))
    with pytest.raises(AudioFileError, match="bad.wav"):
        build_streams(tiny_kws_bank, tmp_path / "s", opts)


def test_false_accepts_reported_per_source(tiny_kws_bank: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    rng = np.random.default_rng(0)
    x = 0.01 * rng.standard_normal(3 * SR)
    x[SR : 2 * SR] += 0.3 * np.sin(2 * np.pi * 300 * np.arange(SR) / SR)  # sounds like "yes"
    sf.write(real / "kitchen.wav", x, SR)
    opts = options(real_dir=str(real), negative_hours=10 / 3600, positives=3)
    built = build_streams(tiny_kws_bank, tmp_path / "s", opts)
    # a huge target is met at the lowest threshold, where the tone in the real audio fires
    res = evaluate_stream_set(built, tone_scorer, CLASSES, thresholds=[0.3], targets=(1e6,))
    by_source = res["pooled_by_source"]["1e+06"]
    assert by_source["real"]["false_accepts"] == 1 and by_source["synthetic"]["false_accepts"] == 0
    assert by_source["real"]["negative_hours"] == pytest.approx(3 / 3600)
    assert res["at_fa_per_hour"]["1e+06"]["pooled"]["false_accepts_by_stream"] == {
        "neg_real_000": 1
    }
