"""`distill export --variant waveform|stateful` on trained runs, and the round trip
export -> ONNX -> `distill detect` on a long file: the same detections as the PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.cli import main
from distill.deploy.onnx_detector import read_metadata
from distill.pipeline.fit import fit
from tests.helpers.recipes import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

SR = 16000


@pytest.fixture(scope="module")
def causal_run(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal TC-ResNet8 with an unnormalised log-mel frontend (streams statefully)."""
    cfg = tiny_recipe(tiny_kws_bank, tmp_path_factory.mktemp("causal"))
    cfg.teacher.kind = "none"
    cfg.student.kwargs = {"causal": True}
    cfg.frontend.normalize = "none"
    cfg.data.clip_seconds = 1.0
    cfg.trainer.limit_train_batches = 2.0
    cfg.trainer.limit_val_batches = 1.0
    return Path(fit(cfg).run_dir)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s of noise with tone words (the tiny bank's words are tones at 300 + 40 k Hz)."""
    rng = np.random.default_rng(0)
    wave = 0.05 * rng.standard_normal(40 * SR)
    t = np.arange(SR // 2) / SR
    for k in range(12):
        start = int((1.5 + 3.2 * k) * SR)
        wave[start : start + SR // 2] += 0.5 * np.sin(2 * np.pi * (300 + 40 * (k % 10)) * t)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, wave.astype(np.float32), SR)
    return path


def detections(model: Path, audio: Path, out: Path, *options: str) -> list[dict]:
    assert main(["detect", str(model), str(audio), "--out", str(out), *options]) == 0
    return json.loads((out / "detections.json").read_text())["detections"]


def threshold_with_detections(run: Path, audio: Path, tmp: Path, *options: str) -> str:
    """A threshold at which the PyTorch model fires a few times on `audio`."""
    from distill.deploy.detect import detect_file
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.stream import StreamConfig

    opts = dict(zip(options[::2], options[1::2]))
    config = StreamConfig(hop_seconds=float(opts.get("--hop", 0.1)))
    scores = detect_file(load_detector_model(run), audio, config).posteriors.scores
    return f"{np.quantile(scores[:, :10].max(axis=1), 0.9):.4f}"  # keywords only


def same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert (x["class"], x["start"], x["end"]) == (y["class"], y["start"], y["end"])
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)


def test_waveform_export_and_detect_round_trip(tiny_run, long_file, tmp_path, capsys) -> None:
    run = tiny_run["run_dir"]
    args = ["export", str(run), "--variant", "waveform", "--int8", "--limit-batches", "1"]
    assert main([*args, "--calib-batches", "1"]) == 0
    printed = capsys.readouterr().out
    assert "max |logit diff| vs PyTorch" in printed and "int8_ptq" in printed
    report = json.loads((run / "export" / "export_stream.json").read_text())["waveform"]
    assert report["files"]["float"]["max_abs_logit_diff"] < 1e-4
    assert report["files"]["int8_ptq"]["agreement_with_float"] >= 0.5
    onnx = run / "export" / "student_waveform_float.onnx"
    meta = read_metadata(onnx)
    assert meta["frontend"]["normalize"] == "utterance" and meta["window_seconds"] == 1.0
    th = threshold_with_detections(run, long_file, tmp_path)
    ours = detections(onnx, long_file, tmp_path / "onnx", "--threshold", th)
    same(ours, detections(run, long_file, tmp_path / "pt", "--threshold", th))
    int8 = detections(run / "export" / "student_waveform_int8_ptq.onnx", long_file,
                      tmp_path / "int8", "--threshold", th)  # fmt: skip
    assert isinstance(int8, list)  # runs end to end; int8 detections may differ


def test_stateful_export_and_detect_round_trip(causal_run, long_file, tmp_path, capsys) -> None:
    assert main(["export", str(causal_run), "--variant", "stateful"]) == 0
    assert "max |posterior diff| vs PyTorch stream" in capsys.readouterr().out
    report = json.loads((causal_run / "export" / "export_stream.json").read_text())["stateful"]
    assert report["hop_seconds"] == pytest.approx(0.08) and report["max_abs_posterior_diff"] < 1e-5
    onnx = causal_run / "export" / "student_stateful.onnx"
    th = threshold_with_detections(causal_run, long_file, tmp_path, "--hop", "0.08")
    ours = detections(onnx, long_file, tmp_path / "onnx", "--threshold", th)  # hop: its step
    capsys.readouterr()
    theirs = detections(causal_run, long_file, tmp_path / "pt", "--threshold", th, "--hop", "0.08")
    same(ours, theirs)
    # trained on 1 s clips, streamed statefully over 1 s windows: the run says so
    assert "trained on 1 s clips" in capsys.readouterr().out
    record = json.loads((tmp_path / "pt" / "detections.json").read_text())
    assert record["model"]["training_clip_seconds"] == 1.0


def test_stateful_export_of_a_model_that_cannot_stream(tiny_run, capsys) -> None:
    assert main(["export", str(tiny_run["run_dir"]), "--variant", "stateful"]) == 2
    assert "normalize='utterance'" in capsys.readouterr().err
    assert main(["export", str(tiny_run["run_dir"]), "--variant", "stateful", "--int8"]) == 2
