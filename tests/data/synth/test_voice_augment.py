"""Voice augmentation: what each kind does to a signal, parameters recorded per clip, rooms split
like speakers, and the same seed giving the same bytes."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.data.synth import augment, kws_render
from distill.data.synth.augment import parse_kinds
from distill.data.synth.kws import plan_clips, synth_kws
from distill.data.synth.speakers import make_speakers
from distill.data.synth.voices import parse_tts
from distill.errors import BadValueError

needs_pra = pytest.mark.skipif(
    importlib.util.find_spec("pyroomacoustics") is None,
    reason="pyroomacoustics not installed (pip install pyroomacoustics)",
)
SR = 16000
TINY = dict(unknown_words=[], per_word=4, workers=1, noise_seconds=1.0, noise_per_type=3)


def _harmonic(f0: float = 150.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def _f0(x: np.ndarray) -> float:
    x = x[2000:-2000]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 17))
    f = np.fft.rfftfreq(1 << 17, 1 / SR)
    band = (f > 80) & (f < 300)
    return float(f[band][spec[band].argmax()])


def _centroid(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float((f * spec).sum() / spec.sum())


def test_pitch_tempo_and_formants_do_what_they_say() -> None:
    x = _harmonic()
    up, down = augment.pitch_shift(x, 4.0), augment.pitch_shift(x, -4.0)
    assert len(up) == len(x) and abs(_f0(up) - 150 * 2 ** (4 / 12)) < 2
    assert abs(_f0(down) - 150 * 2 ** (-4 / 12)) < 2
    fast = augment.time_stretch(x, 1.2)
    assert abs(len(fast) - len(x) / 1.2) <= 1 and abs(_f0(fast) - 150) < 2
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    shaped = augment.apply_mic(noise, {"kind": "bandlimit", "lo": 200, "hi": 2000})
    up_f, down_f = augment.formant_warp(shaped, 1.18), augment.formant_warp(shaped, 0.85)
    assert _centroid(down_f) < _centroid(shaped) < _centroid(up_f)
    assert abs(_f0(augment.formant_warp(x, 1.15)) - 150) < 2  # harmonics stay put


def test_mic_kinds_and_parse() -> None:
    x = _harmonic(300.0) + 0.1 * np.sin(2 * np.pi * 6000 * np.arange(SR) / SR).astype(np.float32)
    tel = augment.apply_mic(x, {"kind": "telephone"})
    spec = np.abs(np.fft.rfft(tel))
    f = np.fft.rfftfreq(len(tel), 1 / SR)
    assert spec[f > 4500].max() < 0.01 * spec.max()  # nothing above the telephone band
    assert len(np.unique(augment.mu_law(np.linspace(-1, 1, 5000)))) <= 256
    comp = augment.apply_mic(x, {"kind": "compress", "threshold_db": -20, "ratio": 4, "drive": 2})
    assert np.max(np.abs(comp)) <= np.max(np.abs(x)) + 1e-6
    assert augment.parse_kinds("all") == augment.KINDS and augment.parse_kinds(None) == ()
    assert augment.parse_kinds("mic,vtlp") == ("vtlp", "mic")
    with pytest.raises(BadValueError, match="unknown"):
        augment.parse_kinds("vtlp,reverse")


def test_draw_is_reproducible_and_kinds_do_not_shift_each_other() -> None:
    a = augment.draw(augment.KINDS, np.random.default_rng(5))
    b = augment.draw(augment.KINDS, np.random.default_rng(5))
    assert a == b and set(a) == set(augment.KINDS)
    only = augment.draw(("pitch",), np.random.default_rng(5))
    assert only == {"pitch": a["pitch"]}
    x = _harmonic()
    assert augment.apply_voice(x, a).tobytes() == augment.apply_voice(x, a).tobytes()


@needs_pra
def test_bank_records_augmentation_and_reproduces_it(tmp_path: Path) -> None:
    args = dict(words=["yes", "stop"], speakers=4, seed=2, tts="espeak:en-us", augment="all")
    synth_kws(tmp_path / "a", rooms=6, **args, **TINY)
    synth_kws(tmp_path / "b", rooms=6, **args, **TINY)
    with open(tmp_path / "a" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "a" / "rooms.csv", newline="") as f:
        room_split = {r["file"]: r["split"] for r in csv.DictReader(f)}
    assert len(room_split) == 6 and set(room_split.values()) == {"train", "validation", "test"}
    for r in rows:
        params = json.loads(r["augment"])
        assert set(params) == set(augment.KINDS)
        assert 0.85 <= params["vtlp"] <= 1.18 and -4 <= params["pitch"] <= 4
        assert params["mic"]["kind"] in augment.MIC_KINDS
        if params["room"]:
            assert room_split[params["room"]] == r["split"]  # rooms are held out like voices
        a, b = (sf.read(str(tmp_path / d / r["path"]))[0] for d in ("a", "b"))
        assert np.array_equal(a, b), r["path"]
    assert any(json.loads(r["augment"])["room"] for r in rows)
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert meta["generator"]["augment"] == list(augment.KINDS)
    assert [r["file"] for r in meta["generator"]["rooms"]] == sorted(room_split)


def test_render_clip_is_a_pure_function_of_its_task(tmp_path: Path) -> None:
    kinds = "vtlp,pitch,mic"
    synth_kws(tmp_path / "bank", words=["go"], speakers=3, tts="espeak", augment=kinds, **TINY)
    with open(tmp_path / "bank" / "manifest.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert set(json.loads(row["augment"])) == {"vtlp", "pitch", "mic"}
    speakers = make_speakers(3, 0, parse_tts("espeak"))
    tasks = plan_clips(tmp_path / "again", {"go": "go"}, {"go": 4}, speakers, 0, parse_kinds(kinds))
    again = {t.path: t for t in tasks}[row["path"]]
    redo = kws_render.render_clip(again)
    assert json.loads(redo["augment"]) == json.loads(row["augment"])
    assert (tmp_path / "again" / row["path"]).read_bytes() == (
        tmp_path / "bank" / row["path"]
    ).read_bytes()


def test_rir_dir_rooms_and_refusals(tmp_path: Path) -> None:
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    for i in range(3):
        h = np.zeros(4000, np.float32)
        h[100 + 10 * i] = 1.0
        h[400:] = 0.05 * np.exp(-np.arange(3600) / 800.0)
        sf.write(str(rirs / f"r{i}.wav"), h, 8000)
    synth_kws(
        tmp_path / "m",
        words=["yes"],
        speakers=3,
        tts="espeak",
        augment="room",
        rir_dir=rirs,
        **TINY,
    )
    with open(tmp_path / "m" / "rooms.csv", newline="") as f:
        rooms = list(csv.DictReader(f))
    assert [Path(r["source"]).name for r in rooms] == ["r0.wav", "r1.wav", "r2.wav"]
    rir = sf.read(str(tmp_path / "m" / "_rooms" / "room_000.wav"))[0]
    assert int(np.argmax(rir)) == 32 and rir.max() == pytest.approx(1.0)  # 2 ms before the peak
    with pytest.raises(BadValueError, match="--rir-dir needs the room augmentation"):
        synth_kws(
            tmp_path / "n",
            words=["yes"],
            speakers=3,
            tts="espeak",
            augment="pitch",
            rir_dir=rirs,
            **TINY,
        )
