"""`--recordings DIR`: real takes mixed into the bank with their own speakers and splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.cli import main
from distill.data.synth.dsp import resample
from distill.data.synth.kws import synth_kws
from distill.data.synth.recordings import scan, speaker_id
from distill.data.synth.tts import synthesize
from distill.errors import BadValueError, MissingFileError

TINY = dict(
    unknown_words=[], per_word=2, workers=1, noise_seconds=1.0, noise_per_type=3, augment="none"
)


def _take(path: Path, word: str, voice: str, sr: int = 22050, stereo: bool = False) -> None:
    """A stand-in for a user's take: TTS at another rate, with silence around it."""
    x = resample(synthesize(voice, word), 16000, sr)
    x = np.concatenate([np.zeros(sr // 4), x, np.zeros(sr // 3)]).astype(np.float32) * 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([x, x], 1) if stereo else x, sr)


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def takes(tmp_path: Path) -> Path:
    root = tmp_path / "takes"
    for s, voice in enumerate(("espeak:en-us+m3", "espeak:en+f2", "espeak:en-029+m1", "espeak:en")):
        for word in ("yes", "stop"):
            for k in range(2):
                _take(root / word / f"spk{s}" / f"take{k}.wav", word, voice, stereo=k == 1)
    return root


def test_recordings_join_the_bank_speaker_disjoint(takes: Path, tmp_path: Path) -> None:
    out = tmp_path / "bank"
    synth_kws(
        out,
        words=["yes", "stop"],
        speakers=3,
        tts="espeak",
        recordings=takes,
        recording_copies=2,
        **TINY,
    )
    rows = _manifest(out)
    rec = [r for r in rows if r["backend"] == "recording"]
    assert len(rec) == 4 * 2 * 2 * 2  # speakers x words x takes x copies
    assert {r["speaker"] for r in rec} == {speaker_id(f"spk{s}") for s in range(4)}
    assert all(
        r["source"].startswith(str(takes)) and r["voice"].startswith("recording:spk") for r in rec
    )
    split_of: dict[str, set[str]] = {}
    for r in rows:
        split_of.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert {next(iter(split_of[r["speaker"]])) for r in rec} == {"train", "validation", "test"}
    for r in rec:
        x, sr = sf.read(str(out / r["path"]))
        assert sr == 16000 and len(x) == 16000 and 0 <= float(r["onset"]) < float(r["offset"])
    listed = (out / "testing_list.txt").read_text().split()
    assert any(p in listed for p in (r["path"] for r in rec if r["split"] == "test"))
    meta = json.loads((out / "dataset.json").read_text())["generator"]["recordings"]
    assert meta["takes"] == 16 and meta["copies"] == 2 and len(meta["speakers"]) == 4


def test_one_speaker_goes_to_train_and_copies_differ(tmp_path: Path) -> None:
    mine = tmp_path / "me"
    for word in ("yes", "stop"):
        for k in range(3):
            _take(mine / word / f"{k}.wav", word, "espeak:en-us+m2", sr=48000)
    out = tmp_path / "bank"
    synth_kws(
        out,
        words=["yes", "stop"],
        speakers=3,
        tts="espeak",
        recordings=mine,
        recording_copies=2,
        **{**TINY, "augment": "vtlp,pitch"},
    )
    rec = [r for r in _manifest(out) if r["backend"] == "recording"]
    assert {r["split"] for r in rec} == {"train"} and {r["speaker"] for r in rec} == {
        speaker_id("me")
    }
    assert len({json.dumps(r["augment"]) for r in rec}) == len(rec)  # every copy its own draw
    same_take = sorted(
        (r for r in rec if r["source"].endswith("yes/0.wav")), key=lambda r: r["path"]
    )
    a, b = (sf.read(str(out / r["path"]))[0] for r in same_take)
    assert not np.array_equal(a, b)


def test_recording_layout_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    _take(bad / "maybe" / "a.wav", "maybe", "espeak:en")
    with pytest.raises(BadValueError, match="'maybe' is not a word of the bank"):
        scan(bad, ["yes", "stop"], 0)
    with pytest.raises(MissingFileError, match="not a directory"):
        scan(tmp_path / "nowhere", ["yes"], 0)
    empty = tmp_path / "empty"
    (empty / "yes").mkdir(parents=True)
    with pytest.raises(MissingFileError, match="no audio files"):
        scan(empty, ["yes"], 0)
    broken = tmp_path / "broken"
    (broken / "yes").mkdir(parents=True)
    (broken / "yes" / "x.wav").write_bytes(b"RIFF nonsense")
    argv = ["data", "synth-kws", "--out", str(tmp_path / "o"), "--words", "yes", "--unknown-words"]
    argv += ["--per-word", "1", "--speakers", "3", "--workers", "1", "--noise-seconds", "1"]
    argv += ["--noise-per-type", "3", "--tts", "espeak", "--recordings", str(broken)]
    assert main(argv) == 2
    assert not (tmp_path / "o").exists()
