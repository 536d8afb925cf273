"""The pure-numpy SoundFont reader/renderer and the SoundFont classes of synth-events."""

from __future__ import annotations

import csv
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.cli import main
from distill.data.synth import soundfont as sfmod
from distill.data.synth.events import (
    ALL_CLASSES,
    EventClipTask,
    render_event_clip,
    resolve_soundfont,
    synth_events,
)
from distill.data.synth.soundfont import SoundFont, find_soundfonts, render_note
from distill.data.synth.soundfont_events import available_classes, render_sf_event

from .sf2_writer import make_test_font

SR = 16000


@pytest.fixture(scope="module")
def font_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_font(tmp_path_factory.mktemp("sf2") / "test.sf2")


def _pitch(x: np.ndarray) -> float:
    """Frequency of the strongest spectral peak (8x zero-padded FFT)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spec)) * SR / (8 * len(x))


def test_load_reads_the_tables(font_path: Path) -> None:
    font = SoundFont.load(font_path)
    assert set(font.presets) == {(0, 0), (0, 1), (0, 2), (128, 0)}
    assert font.samples.dtype == np.int16
    assert len(font.samples) == 2 * (11025 + 46) + 1600 + 46
    assert [bytes(n).rstrip(b"\0") for n in font.tables["shdr"]["name"]][-1] == b"EOS"


@pytest.mark.parametrize(("key", "freq"), [(69, 440.0), (81, 880.0), (57, 220.0), (76, 659.26)])
def test_note_pitch_follows_the_key(font_path: Path, key: int, freq: float) -> None:
    x = render_note(font_path, 0, 0, key, 100, 1.0)
    assert x.dtype == np.float32 and abs(float(np.max(np.abs(x))) - 1.0) < 1e-4
    assert abs(_pitch(x) - freq) < 0.02 * freq


def test_looped_note_lasts_and_drum_hit_stops_with_its_sample(font_path: Path) -> None:
    x = render_note(font_path, 0, 0, 69, 100, 1.3)
    assert len(x) == int(1.3 * SR)  # the 0.5 s sample is looped to fill 1.3 s
    rms = lambda seg: float(np.sqrt(np.mean(seg**2)))  # noqa: E731
    assert rms(x[int(1.0 * SR) : int(1.2 * SR)]) > 0.5 * rms(x[int(0.1 * SR) : int(0.3 * SR)])
    assert np.max(np.abs(x[:40])) < 0.5 and abs(x[-1]) < 0.01  # attack and release fades
    hit = render_note(font_path, 128, 0, 38, 100, 1.0)
    assert 1500 <= len(hit) <= 1601  # the 0.1 s burst at its root key (overridden to 38)
    assert render_note(font_path, 128, 0, 40, 100, 1.0).size == 0  # no zone on key 40


def test_coarse_and_fine_tune_shift_the_pitch(font_path: Path) -> None:
    fifth = _pitch(render_note(font_path, 0, 1, 69, 100, 1.0))
    assert abs(fifth - 440 * 2 ** (7 / 12)) < 0.01 * 659.26
    # instrument +50 cents, preset global zone +30 cents, sample pitch correction -30 cents
    cents = _pitch(render_note(font_path, 0, 2, 69, 100, 1.0))
    assert abs(cents - 440 * 2 ** (50 / 1200)) < 0.005 * 452.9


def test_unknown_preset_names_file_bank_and_program(font_path: Path) -> None:
    with pytest.raises(KeyError, match=r"test\.sf2.*bank 0 program 99.*128:0"):
        render_note(font_path, 0, 99, 60, 100, 0.5)


def test_corrupt_files_raise_value_error_naming_them(font_path: Path, tmp_path: Path) -> None:
    data = font_path.read_bytes()
    cut = tmp_path / "cut.sf2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.sf2: truncated"):
        SoundFont.load(cut)
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"RIFF\x04\0\0\0WAVE")
    with pytest.raises(ValueError, match=r"junk\.sf2: not a RIFF sfbk file"):
        SoundFont.load(junk)
    from .sf2_writer import Instrument, Preset, Sample, write_sf2

    s, insts = [Sample("s", np.zeros(100), SR, 60)], [Instrument("i", [{53: 0}])]
    presets = [Preset("p", 0, 0, [{41: 0}])]
    no_shdr = write_sf2(tmp_path / "no_shdr.sf2", s, insts, presets, skip_chunks=("shdr",))
    with pytest.raises(ValueError, match=r"no_shdr\.sf2: pdta chunk 'shdr' missing"):
        SoundFont.load(no_shdr)
    sf3 = write_sf2(tmp_path / "x.sf3", s, insts, [], version=(3, 1))
    with pytest.raises(ValueError, match=r"x\.sf3: SoundFont 3 \(compressed samples\)"):
        SoundFont.load(sf3)


def test_find_soundfonts_sorted_without_link_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for p in (a / "Zeta.sf2", a / "Alpha.sf2", b / "Mid.sf2"):
        p.write_bytes(b"x")
    (a / "notes.txt").write_text("x")
    (a / "default-GM.sf2").symlink_to(a / "Zeta.sf2")
    monkeypatch.setattr(sfmod, "FONT_DIRS", (a, b, tmp_path / "absent"))
    assert find_soundfonts() == [a / "Alpha.sf2", a / "Zeta.sf2", b / "Mid.sf2"]


def test_only_renderable_classes_are_offered(font_path: Path) -> None:
    ok, skipped = available_classes(SoundFont.load(font_path))
    assert ok == ["Piano", "Snare_drum"]
    assert "no preset bank 0 program 12" in skipped["Marimba"]
    assert "no sample for keys [36]" in skipped["Bass_drum"]
    a = render_sf_event(str(font_path), "Piano", np.random.default_rng(3))
    b = render_sf_event(str(font_path), "Piano", np.random.default_rng(3))
    assert a.dtype == np.float32 and len(a) >= int(0.15 * SR) and np.array_equal(a, b)
    drum = render_sf_event(str(font_path), "Snare_drum", np.random.default_rng(1))
    assert 1500 <= len(drum) <= int((3 * 0.5 + 0.1) * SR) + 1


def _vocab(root: Path) -> dict[str, str]:
    with open(root / "FSD50K.ground_truth" / "vocabulary.csv", newline="") as f:
        return {r[1]: r[2] for r in csv.reader(f)}


def test_synth_events_adds_soundfont_classes_with_stable_mids(
    font_path: Path, tmp_path: Path
) -> None:
    opts = {"clips": 5, "clip_seconds": 1.0, "seed": 1, "workers": 1}
    summary = synth_events(tmp_path / "sf", soundfont=str(font_path), **opts)
    plain = synth_events(tmp_path / "plain", soundfont="none", **opts)
    with_sf, without = _vocab(tmp_path / "sf"), _vocab(tmp_path / "plain")
    assert list(with_sf) == [*ALL_CLASSES, "Piano", "Snare_drum"] and list(without) == [
        *ALL_CLASSES
    ]
    assert {k: with_sf[k] for k in ALL_CLASSES} == without
    assert (with_sf["Piano"], with_sf["Snare_drum"]) == ("/synth/sf/000", "/synth/sf/011")
    assert summary["soundfont_classes"] == 2 and str(font_path) in str(summary["soundfont"])
    assert plain["soundfont_classes"] == 0 and "none" in str(plain["soundfont"])
    meta = json.loads((tmp_path / "sf" / "dataset.json").read_text())
    assert meta["generator"]["soundfont"]["path"] == str(font_path)
    assert "Flute" in meta["generator"]["soundfont"]["skipped"]
    # a clip of SoundFont classes only, rendered the way a worker process gets it
    task = EventClipTask(str(tmp_path), 7, 7, "eval", 1.0, ("Piano", "Snare_drum"), 1, None)
    task = pickle.loads(pickle.dumps(task))
    with pytest.raises(ValueError, match="needs a SoundFont"):
        render_event_clip(task)
    task = pickle.loads(pickle.dumps(replace(task, soundfont=str(font_path))))
    row = render_event_clip(task)
    wav = tmp_path / "FSD50K.eval_audio" / "7.wav"
    first = wav.read_bytes()
    assert set(row["labels"]) <= {"Piano", "Snare_drum"} and row["labels"]
    assert sf.info(str(wav)).frames == SR
    assert render_event_clip(task) == row and wav.read_bytes() == first  # seeded


def test_bad_soundfont_path_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "missing.sf2"
    argv = ["data", "synth-events", "--out", str(tmp_path / "ev"), "--clips", "3"]
    assert main(argv + ["--soundfont", str(missing), "--workers", "1"]) == 2
    assert f"--soundfont {missing}: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(ValueError, match=r"bad\.sf2.*not a RIFF sfbk"):
        resolve_soundfont(bad)
    assert not (tmp_path / "ev").exists() and not (tmp_path / "ev.partial").exists()
