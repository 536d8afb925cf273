"""Deployment ONNX without Python: the waveform-in model (frontend inside) and the stateful
streaming model (state as inputs/outputs), each against PyTorch, and as `distill detect`
backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.data.frontend import Frontend
from distill.deploy.detector_model import StudentDetector, load_detector_model
from distill.deploy.onnx_detector import OnnxStatefulDetector, read_metadata
from distill.deploy.onnx_frontend import ExportableFrontend, check_frontend
from distill.deploy.onnx_io import export_float
from distill.deploy.onnx_stream import (
    STATEFUL_TOLERANCE,
    WAVEFORM_TOLERANCE,
    export_stateful,
    export_waveform,
    stateful_parity,
    step_seconds_for,
    waveform_parity,
)
from distill.deploy.stateful_step import plan_steps
from distill.deploy.stream import StreamConfig, Streamer, waveform_posteriors
from distill.errors import BadValueError, UsageError
from tests.deploy.stream_helpers import detector, train_briefly

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

SR = 16000


def trained(name: str, **kwargs: object) -> StudentDetector:
    det = detector(name, **kwargs)
    train_briefly(det.student)
    return det


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with louder tone bursts, so posteriors move."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.02 * rng.standard_normal(t.size)
    for k, start in enumerate(np.arange(0.5, seconds - 0.5, 1.3)):
        inside = (t >= start) & (t < start + 0.4)
        wave[inside] += 0.4 * np.sin(2 * np.pi * (300 + 150 * k) * t[inside])
    return wave.astype(np.float32)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"normalize": "utterance"},
        {"kind": "mfcc"},
        {"kind": "mfcc", "n_mfcc": 20, "normalize": "utterance"},
        {"n_fft": 1024, "win_length": 640, "hop_length": 320, "sample_rate": 22050},
    ],
)
def test_exportable_frontend_computes_the_frontends_features(options: dict) -> None:
    fe = Frontend(**options)
    wave = torch.from_numpy(np.stack([audio(1.0), 1e-3 * audio(1.0, 1)]))
    ours, theirs = ExportableFrontend(fe)(wave), fe(wave)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)


def test_frontend_settings_it_cannot_reproduce_are_named() -> None:
    fe = Frontend()
    fe.mel.spectrogram.power = 1.0
    with pytest.raises(UsageError, match=r"power=1.0 \(supported: 2.0\)"):
        check_frontend(fe)
    fe = Frontend()
    fe.mel.spectrogram.window = torch.hamming_window(480)
    with pytest.raises(UsageError, match="Hann"):
        check_frontend(fe)


def test_waveform_onnx_matches_pytorch_and_describes_itself(tmp_path) -> None:
    det = trained("tc_resnet8")
    path = export_waveform(det, tmp_path / "w.onnx")
    waves = [np.stack([audio(1.0, s) for s in range(3)]), audio(1.7, 5)[None]]  # any length
    parity = waveform_parity(det, path, waves)
    assert parity["max_abs_logit_diff"] <= WAVEFORM_TOLERANCE and parity["clips"] == 4
    assert parity["max_abs_logit_diff"] < 1e-4  # measured: about 1e-7
    meta = read_metadata(path)
    assert meta["variant"] == "waveform" and meta["class_names"] == det.class_names
    assert meta["sample_rate"] == SR and meta["window_seconds"] == 1.0
    assert meta["frontend"]["n_fft"] == 512 and meta["frontend"]["normalize"] == "none"
    assert meta["thresholds"]["thresholds"] == {f"c{i}": 0.5 for i in range(4)}
    assert meta["activation"] == "softmax"
    # as a detect backend: the same sliding-window posteriors as the PyTorch student
    onnx_det = load_detector_model(path)
    config = StreamConfig(mode="auto", hop_seconds=0.1)
    ours, theirs = (
        waveform_posteriors(onnx_det, audio(4.0), config),
        waveform_posteriors(det, audio(4.0), StreamConfig(mode="sliding")),
    )
    assert ours.info["mode"] == "sliding" and "stateful" in ours.info["stateful_unavailable"]
    assert theirs.scores.std(axis=0).max() > 1e-3  # posteriors that move
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)


def test_waveform_onnx_with_mfcc_and_per_clip_normalisation(tmp_path) -> None:
    torch.manual_seed(0)
    from distill import students

    fe = Frontend(kind="mfcc", n_mfcc=20, normalize="utterance")
    model = train_briefly(students.create("gru", 3, 20), n_features=20)
    det = StudentDetector(model, fe, ["a", "b", "c"], 1.0, "sigmoid", student_name="gru")
    path = export_waveform(det, tmp_path / "m.onnx")
    parity = waveform_parity(det, path, [np.stack([audio(1.0, s) for s in range(4)])])
    assert parity["max_abs_logit_diff"] < 1e-4
    assert read_metadata(path)["frontend"]["kind"] == "mfcc"


STATEFUL = [
    ("tc_resnet8", {"causal": True}, True),
    ("gru", {}, True),
    ("crnn", {}, False),
    ("lstm_p", {}, False),
    ("ds_cnn_s", {"causal": True}, True),
    ("bc_resnet1", {"causal": True}, True),
]


@pytest.mark.parametrize(("name", "kwargs", "train"), STATEFUL)
def test_stateful_onnx_equals_the_pytorch_stream(name, kwargs, train, tmp_path) -> None:
    det = trained(name, **kwargs) if train else detector(name, **kwargs)
    step = step_seconds_for(det)
    path = export_stateful(det, tmp_path / "s.onnx", step)
    parity = stateful_parity(det, path, audio(6.0))  # chunks of 0.37 and 0.53 s
    assert parity["hops"] == int(6.0 / step)
    assert parity["max_abs_posterior_diff"] <= STATEFUL_TOLERANCE
    assert parity["max_abs_posterior_diff"] < 1e-6  # measured: about 3e-8


def test_stateful_onnx_runs_from_its_metadata_alone(tmp_path) -> None:
    """What a user without distill does: states from the metadata, zeros first, outputs fed
    back; the result is PyTorch's stateful stream."""
    import onnxruntime as ort

    det = trained("tc_resnet8", causal=True)
    path = export_stateful(det, tmp_path / "s.onnx", 0.16, window_seconds=0.8)
    meta = read_metadata(path)
    assert meta["variant"] == "stateful" and meta["step_samples"] == 2560
    assert meta["window_seconds"] == 0.8 and meta["training_window_seconds"] == 1.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {"int64": np.int64, "float32": np.float32}
    state = {s["input"]: np.zeros(s["shape"], dtypes[s["dtype"]]) for s in meta["states"]}
    outputs = ["logits", "ready", *[s["output"] for s in meta["states"]]]
    wave, rows = audio(5.0), []
    for i in range(0, len(wave) - 2559, 2560):
        logits, ready, *new = sess.run(outputs, {"samples": wave[None, i : i + 2560], **state})
        state = dict(zip(state, new))
        if ready[0]:
            rows.append(torch.from_numpy(logits[0]).softmax(-1).numpy())
    ref = waveform_posteriors(det, wave, StreamConfig("stateful", 0.16, 0.8))
    assert len(rows) == len(ref.scores) == 31
    np.testing.assert_allclose(np.stack(rows), ref.scores, atol=1e-6)


def test_steps_must_fit_the_strides_and_models_must_be_causal(tmp_path) -> None:
    det = detector("tc_resnet8", causal=True)  # total time stride 8 frames = 80 ms
    with pytest.raises(BadValueError, match="multiple of the student's total time stride"):
        plan_steps(det.student, det.frontend, SR, 1600)
    assert step_seconds_for(det) == pytest.approx(0.08)
    assert step_seconds_for(detector("gru")) == pytest.approx(0.1)
    with pytest.raises(BadValueError, match="n_fft / 2"):
        plan_steps(det.student, det.frontend, SR, 160)
    with pytest.raises(UsageError, match="causal=true"):
        export_stateful(detector("tc_resnet8"), tmp_path / "x.onnx", 0.08)
    with pytest.raises(UsageError, match="normalize='utterance'"):
        export_stateful(detector("gru", normalize="utterance"), tmp_path / "x.onnx")


def test_stateful_onnx_refuses_other_windows_hops_and_sliding(tmp_path) -> None:
    det = detector("gru")
    onnx_det = OnnxStatefulDetector(export_stateful(det, tmp_path / "g.onnx", 0.1))
    assert onnx_det.hop_seconds == pytest.approx(0.1)
    with pytest.raises(BadValueError, match="multiple"):
        Streamer(onnx_det, StreamConfig(hop_seconds=0.15))
    Streamer(onnx_det, StreamConfig(hop_seconds=0.2))  # two steps per hop
    with pytest.raises(BadValueError, match="fixed at export"):
        Streamer(onnx_det, StreamConfig(window_seconds=2.0))
    with pytest.raises(UsageError, match="cannot score windows"):
        Streamer(onnx_det, StreamConfig(mode="sliding"))


def test_a_features_in_onnx_is_not_a_detector(tmp_path) -> None:
    det = detector("tc_resnet8")
    path = export_float(det.student, tmp_path / "student_float.onnx", 40, 101, 17)
    with pytest.raises(UsageError, match="--variant waveform"):
        load_detector_model(path)
