"""`distill detect`: detections at known times in a generated stream; bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from distill import students
from distill.cli import main
from distill.deploy.audio_source import StreamResampler, read_blocks
from tests.deploy.stream_helpers import EnergyNet, frontend_info, save_student_file

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

BEEPS = [(2.0, 2.4), (5.5, 5.9), (9.0, 9.4)]  # seconds
RATE = 44100  # the files' rate: detect resamples to the model's 16 kHz


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The energy toy (beep vs quiet noise) saved as `distill fit` saves a student."""
    info = {
        "name": "tests.deploy.stream_helpers.EnergyNet",
        "num_classes": 2,
        "n_features": 40,
        "kwargs": {},
        "class_names": ["_silence_", "beep"],
        "frontend": frontend_info(),
        "clip_seconds": 1.0,
        "task": "single_label",
    }
    path = tmp_path_factory.mktemp("toy") / "student.safetensors"
    return save_student_file(path, EnergyNet(), info)


def _beep_stream(seconds: float = 12.0, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.003 * rng.standard_normal(t.size)
    for on, off in BEEPS:
        inside = (t >= on) & (t < off)
        wave[inside] += 0.3 * np.sin(2 * math.pi * 1000 * t[inside])
    # the beep in the first channel only (averaged: half as loud), noise in both
    stereo = np.stack([wave, 0.003 * rng.standard_normal(t.size)], axis=1)
    return (stereo if channels == 2 else wave[:, None]).astype(np.float32)


def _run(*args: str) -> int:
    return main(["detect", *map(str, args)])


def test_detections_at_the_known_times(toy_model: Path, tmp_path: Path, capsys) -> None:
    audio = tmp_path / "stream.flac"
    sf.write(audio, _beep_stream(), RATE)
    out = tmp_path / "out"
    assert _run(toy_model, audio, "--out", out, "--smooth", "1", "--plot") == 0
    record = json.loads((out / "detections.json").read_text())
    dets = record["detections"]
    assert [d["class"] for d in dets] == ["beep"] * 3
    for det, (on, off) in zip(dets, BEEPS):
        # hop times are window ends: the first window holding the beep ends at the first hop
        # after its onset, the last one at the last hop under a window (1 s) after its offset
        assert det["start"] == pytest.approx(on + 0.1, abs=1e-6), (det, on)
        assert det["end"] == pytest.approx(off + 0.9, abs=1e-6), (det, off)
        assert det["score"] > 0.99
    rows = list(csv.DictReader((out / "detections.csv").open()))
    assert [(r["class"], float(r["start"])) for r in rows] == [
        (d["class"], d["start"]) for d in dets
    ]
    assert record["stream"]["mode"] == "sliding"  # a toy is no built-in stateful student
    assert "not a built-in student" in record["stream"]["stateful_unavailable"]
    assert record["decisions"]["thresholds"] == {"beep": 0.5}
    assert record["files"][0]["native_sample_rate"] == RATE
    assert record["files"][0]["channels"] == 2
    assert record["files"][0]["hops"] == 120
    png = Path(record["plots"][0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 detection(s)" in capsys.readouterr().out


def test_stateful_student_and_folder_input(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = students.create("tc_resnet8", 3, 40, causal=True).eval()
    info = {
        "name": "tc_resnet8",
        "num_classes": 3,
        "n_features": 40,
        "kwargs": {"causal": True},
        "class_names": ["_silence_", "a", "b"],
        "frontend": frontend_info(),
        "clip_seconds": 1.0,
        "task": "single_label",
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from distill.pipeline.artifacts import STUDENT_FILE

    save_student_file(run_dir / STUDENT_FILE, model, info)
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "one.wav", _beep_stream(3.0, 1), RATE)
    sf.write(folder / "sub" / "two.ogg", _beep_stream(2.0, 2), RATE)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert _run(run_dir, folder, "--out", out, "--threshold", "0.0") == 0
    record = json.loads((out / "detections.json").read_text())
    assert record["stream"]["mode"] == "stateful"
    assert [Path(f["file"]).name for f in record["files"]] == ["one.wav", "two.ogg"]
    assert [f["hops"] for f in record["files"]] == [30, 20]
    # threshold 0: each class is active from the first hop, one detection per class and file
    assert len(record["detections"]) == 4


def test_silence_short_and_empty_audio_give_no_detections(toy_model: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "silence.wav", np.zeros((RATE * 3, 1), np.float32), RATE)
    sf.write(tmp_path / "short.wav", np.full((100, 1), 0.5, np.float32), RATE)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), RATE)
    out = tmp_path / "out"
    assert _run(toy_model, tmp_path, "--out", out) == 0
    record = json.loads((out / "detections.json").read_text())
    assert record["detections"] == []
    assert {Path(f["file"]).name: f["hops"] for f in record["files"]} == {
        "empty.wav": 0,
        "short.wav": 0,
        "silence.wav": 30,
    }


def test_bad_audio_is_named_or_skipped(toy_model: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, _beep_stream(3.0, 1), RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    assert _run(toy_model, good, corrupt, "--out", tmp_path / "a") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(corrupt) in err
    assert _run(toy_model, good, corrupt, "--out", tmp_path / "b", "--skip-bad") == 0
    record = json.loads((tmp_path / "b" / "detections.json").read_text())
    assert [s["file"] for s in record["skipped"]] == [str(corrupt)]
    assert f"skipped {corrupt}" in capsys.readouterr().out
    assert len(record["detections"]) == 1  # the beep in good.wav

    nan = tmp_path / "nan.wav"
    samples = np.zeros((RATE, 1), np.float32)
    samples[RATE // 2] = np.nan
    sf.write(nan, samples, RATE, subtype="FLOAT")
    assert _run(toy_model, nan, "--out", tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert str(nan) in err and "NaN/inf" in err


def test_unknown_keyword_lists_the_classes(toy_model: Path, tmp_path: Path, capsys) -> None:
    sf.write(tmp_path / "x.wav", np.zeros((RATE, 1), np.float32), RATE)
    assert _run(toy_model, tmp_path / "x.wav", "--keyword", "hello", "--out", tmp_path) == 2
    err = capsys.readouterr().err
    assert "'hello'" in err and "_silence_, beep" in err


def test_missing_inputs_are_errors(toy_model: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty_dir").mkdir()
    assert _run(toy_model, tmp_path / "empty_dir", "--out", tmp_path / "o") == 2
    assert "holds no .wav/.flac/.ogg files" in capsys.readouterr().err
    assert _run(toy_model, tmp_path / "nope.wav", "--out", tmp_path / "o") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run(tmp_path / "no_model", tmp_path, "--out", tmp_path / "o") == 2
    assert "no_model" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("sounddevice") is not None, reason="installed")
def test_mic_without_sounddevice_says_what_to_install(toy_model: Path, capsys) -> None:
    assert _run(toy_model, "--mic") == 2
    assert "pip install 'temporal-distill[mic]'" in capsys.readouterr().err


def test_blocks_from_disk_equal_the_whole_file_resampled(tmp_path: Path) -> None:
    data = _beep_stream(3.0, 2)
    sf.write(tmp_path / "x.wav", data, RATE, subtype="FLOAT")
    blocks = list(read_blocks(tmp_path / "x.wav", 16000, block_seconds=0.7))
    assert len(blocks) >= 4 and max(b.numel() for b in blocks) <= int(0.7 * 16000) + 200
    whole = torchaudio.functional.resample(torch.from_numpy(data.mean(axis=1)), RATE, 16000)
    torch.testing.assert_close(torch.cat(blocks), whole, atol=1e-5, rtol=0)
    for rate in (8000, 22050, 48000):
        x = torch.randn(rate + 123)
        r = StreamResampler(rate, 16000)
        y = torch.cat([*(r.push(x[i : i + 999]) for i in range(0, x.numel(), 999)), r.finish()])
        ref = torchaudio.functional.resample(x, rate, 16000)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_run_directory_and_checkpoint_agree(tiny_run: dict, tmp_path: Path) -> None:
    """A trained run: its saved student and its best checkpoint detect the same."""
    run_dir = tiny_run["run_dir"]
    sf.write(tmp_path / "a.wav", _beep_stream(3.0, 1), RATE)
    records = []
    for i, model in enumerate((run_dir, run_dir / "checkpoints" / "best.ckpt")):
        out = tmp_path / f"out{i}"
        assert _run(model, tmp_path / "a.wav", "--out", out, "--threshold", "0.05") == 0
        records.append(json.loads((out / "detections.json").read_text()))
    assert records[0]["model"]["source"] != records[1]["model"]["source"]
    assert records[0]["detections"] and records[0]["detections"] == records[1]["detections"]
    # the recipe's per-clip normalisation rules the stateful mode out, and says so
    assert records[0]["stream"]["mode"] == "sliding"
    assert "normalize='utterance'" in records[0]["stream"]["stateful_unavailable"]
