"""`distill.data.real_sets`: held-out real takes as a test-only bank next to a bank's test noise."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.data.noisy import NoisySpeechCommands
from distill.data.real_sets import write_real_set
from distill.data.synth.dsp import resample
from distill.data.synth.kws import synth_kws
from distill.data.synth.recordings import speaker_id
from distill.data.synth.tts import synthesize
from distill.errors import BadValueError, MissingFileError


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real_sets") / "bank"
    synth_kws(
        out,
        words=["yes", "stop"],
        unknown_words=["cat"],
        per_word=2,
        speakers=3,
        tts="espeak",
        workers=1,
        noise_seconds=1.0,
        noise_per_type=3,
    )
    return out


def _fake_real(root: Path) -> Path:
    """A tiny 'real' folder: two speakers, 8 kHz telephone-rate takes with silence around."""
    for name, voice in (("ann", "espeak:en-us+f2"), ("bob", "espeak:en+m3")):
        for word in ("yes", "stop"):
            x = resample(synthesize(voice, word), 16000, 8000)
            x = np.concatenate([np.zeros(2000), x, np.zeros(3000)]).astype(np.float32) * 0.3
            path = root / word / name / "take0.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), x, 8000)
    return root


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_real_set_is_a_test_only_bank_with_the_test_noise(bank: Path, tmp_path: Path) -> None:
    source = _fake_real(tmp_path / "real")
    out = tmp_path / "out"
    summary = write_real_set(source, bank, out, copies=3, seed=1)
    rows = _manifest(out)
    assert summary["clips"] == len(rows) == 2 * 2 * 3 and summary["takes"] == 4
    assert {r["speaker"] for r in rows} == {speaker_id("ann"), speaker_id("bob")}
    assert {r["split"] for r in rows} == {"test"}
    assert sorted((out / "testing_list.txt").read_text().split()) == sorted(r["path"] for r in rows)
    assert (out / "validation_list.txt").read_text() == ""
    for r in rows:
        x, sr = sf.read(str(out / r["path"]))
        assert sr == 16000 and len(x) == 16000
        assert np.all(np.abs(x.reshape(-1, 80)).max(axis=1) > 0)  # no 5 ms of digital silence
        onset, offset = float(r["onset"]), float(r["offset"])
        assert 0.02 <= onset < offset <= 0.98
        inside = np.abs(x[int(onset * sr) : int(offset * sr)]).max()
        assert (
            inside > 100 * np.abs(x[: max(1, int(onset * sr) - 80)]).max()
        )  # the span is the speech
    with open(bank / "noise_splits.csv", newline="") as fh:
        test_noise = sorted(r["file"] for r in csv.DictReader(fh) if r["split"] == "test")
    assert sorted(p.name for p in (out / "_background_noise_").iterdir()) == test_noise
    meta = json.loads((out / "real_set.json").read_text())
    assert len(meta["sources"]) == 4 and all(len(s["sha256"]) == 64 for s in meta["sources"])
    # the copies of one take differ (own position), and the loader reads the set like the bank
    a, b = (sf.read(str(out / f"yes/{speaker_id('ann')}_nohash_{k}.wav"))[0] for k in (0, 1))
    assert not np.array_equal(a, b)
    ds = NoisySpeechCommands(
        out, "test", classes="yes,stop,_unknown_", clip_seconds=2.0, snr_db=(30.0, 40.0)
    )
    assert len(ds) == len(rows)
    item = ds[0]
    assert item["waveform"].shape[-1] == 32000


def test_real_set_is_deterministic(bank: Path, tmp_path: Path) -> None:
    source = _fake_real(tmp_path / "real")
    write_real_set(source, bank, tmp_path / "a", copies=2, seed=3)
    write_real_set(source, bank, tmp_path / "b", copies=2, seed=3)
    for r in _manifest(tmp_path / "a"):
        assert (tmp_path / "a" / r["path"]).read_bytes() == (
            tmp_path / "b" / r["path"]
        ).read_bytes()


def test_real_set_errors(bank: Path, tmp_path: Path) -> None:
    source = _fake_real(tmp_path / "real")
    (source / "maybe").mkdir()
    with pytest.raises(BadValueError, match="'maybe' is not a word of the bank"):
        write_real_set(source, bank, tmp_path / "out")
    (source / "maybe").rmdir()
    with pytest.raises(MissingFileError, match="must be a synth-kws bank"):
        write_real_set(source, tmp_path / "nobank", tmp_path / "out")
    with pytest.raises(BadValueError, match="copies must be >= 1"):
        write_real_set(source, bank, tmp_path / "out", copies=0)
    assert not (tmp_path / "out").exists()
