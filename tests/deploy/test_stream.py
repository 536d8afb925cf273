"""The streaming runtime: stateful == plain student on the audio heard; sliding == per window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from distill.students.causal import CausalConv2d

from distill import students
from distill.data.frontend import Frontend
from distill.deploy.stateful import StreamingLogMel
from distill.deploy.stream import StreamConfig, Streamer, stream_posteriors, waveform_posteriors
from distill.errors import BadValueError, UsageError
from tests.deploy.stream_helpers import SR, detector, reference_stateful, train_briefly

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

# Stated tolerance: stateful and sliding posteriors match the non-streaming computation to
# 1e-5 (float32 rounding; measured differences are below 1e-7).
ATOL = 1e-5
# chunk sizes in samples: under a hop, the hop (1600), one that divides no hop, over a second
CHUNKS = (593, 1600, 2501, 20011)
STATEFUL = [
    ("tc_resnet8", {"causal": True}),
    ("gru", {"units": 24}),
    ("crnn", {"units": 24}),
    ("lstm_p", {"hidden_size": 24, "proj_size": 12}),
    ("ds_cnn_s", {"causal": True}),
    ("bc_resnet1", {"causal": True}),
]


def _wave(seconds: float = 2.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * 700 * t) * (t > seconds / 2)
    return tone + 0.05 * torch.randn(t.numel(), generator=g)


def _chunks(wave: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [wave[i : i + size] for i in range(0, wave.numel(), size)]


@pytest.mark.parametrize("size", [1, 7, 160, 999])
def test_streaming_logmel_equals_the_frontend(size: int) -> None:
    fe = Frontend(normalize="none")
    wave = _wave(0.5 if size == 1 else 1.5)
    stream = StreamingLogMel(fe)
    frames = torch.cat([stream.push(c) for c in _chunks(wave, size)], dim=-1)
    full = fe(wave[None])[0]
    # every frame whose window lies inside the audio heard; the last ones need the future
    expected = (wave.numel() - (512 - 256)) // 160 + 1
    assert frames.shape == (40, expected)
    torch.testing.assert_close(frames, full[:, :expected], atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), STATEFUL, ids=[s[0] for s in STATEFUL])
def test_stateful_equals_the_plain_student_random_weights(name: str, kwargs: dict) -> None:
    det = detector(name, **kwargs)
    wave = _wave(1.5)
    for size in CHUNKS:
        post = stream_posteriors(det, _chunks(wave, size), StreamConfig(mode="stateful"))
        assert post.info["mode"] == "stateful"
        assert len(post.times) == 15  # a posterior every 0.1 s of the 1.5 s
        np.testing.assert_allclose(post.times, np.arange(1, 16) * 0.1)
        axis = -1 if post.info["pooling"].startswith("average") else 1
        ref = reference_stateful(det, wave, post.times, post.info["window_steps"], axis)
        np.testing.assert_allclose(post.scores, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("tc_resnet8", {"causal": True}), ("gru", {"units": 24})],
    ids=["tc_resnet8", "gru"],
)
def test_stateful_equals_the_plain_student_trained(name: str, kwargs: dict) -> None:
    det = detector(name, window=0.5, **kwargs)
    before = {k: v.clone() for k, v in det.student.state_dict().items()}
    train_briefly(det.student)
    moved = [k for k, v in det.student.state_dict().items() if not torch.equal(v, before[k])]
    assert len(moved) > len(before) // 2
    wave = _wave(2.5, seed=3)
    for size in (777, 1600, 4099):
        post = stream_posteriors(det, _chunks(wave, size), StreamConfig(mode="stateful"))
        axis = -1 if name == "tc_resnet8" else 1
        ref = reference_stateful(det, wave, post.times, post.info["window_steps"], axis)
        np.testing.assert_allclose(post.scores, ref, atol=ATOL, rtol=0)
        # the window matters: 0.5 s is 51 frames, 7 steps after TC-ResNet8's 3 stride-2 blocks
        if name == "tc_resnet8":
            assert post.info["window_steps"] == 7


def test_stateful_first_window_equals_the_plain_student_on_that_window() -> None:
    det = detector("tc_resnet8", causal=True)
    wave = _wave(1.0)
    post = waveform_posteriors(det, wave, StreamConfig(mode="stateful", hop_seconds=1.0))
    fe = det.frontend
    heard = fe(wave[None])[..., : (SR - 256) // 160 + 1]  # the frames complete at 1.0 s
    with torch.no_grad():
        plain = det.student(heard).softmax(-1)[0].numpy()
    np.testing.assert_allclose(post.scores[0], plain, atol=ATOL, rtol=0)


@pytest.mark.parametrize("pad_start", [True, False])
def test_sliding_equals_the_model_on_each_window(pad_start: bool) -> None:
    # the default student (SAME padding) with per-clip normalisation: sliding window only
    det = detector("tc_resnet8", normalize="utterance", window=0.8)
    wave = _wave(2.0)
    config = StreamConfig(mode="auto", hop_seconds=0.15, pad_start=pad_start, batch_size=5)
    for size in (999, 2400, 7001):
        post = stream_posteriors(det, _chunks(wave, size), config)
        assert post.info["mode"] == "sliding"
        hop, window = int(0.15 * SR), int(0.8 * SR)
        ends = [k * hop for k in range(1, wave.numel() // hop + 1)]
        ends = [e for e in ends if pad_start or e >= window]
        np.testing.assert_allclose(post.times, np.array(ends) / SR)
        padded = torch.cat([torch.zeros(window), wave])
        windows = torch.stack([padded[e : e + window] for e in ends])
        with torch.no_grad():
            expected = det.student(det.frontend(windows)).softmax(-1).numpy()
        np.testing.assert_allclose(post.scores, expected, atol=ATOL, rtol=0)


def test_auto_mode_falls_back_and_says_why() -> None:
    wave = _wave(0.5)
    cases = [
        (detector("tc_resnet8", normalize="utterance"), "normalize='utterance'"),
        (detector("tc_resnet8"), "causal=true"),
        (detector("att_rnn"), "bidirectional"),
        (detector("ds_cnn_s"), "SAME padding"),
    ]
    for det, reason in cases:
        post = waveform_posteriors(det, wave)
        assert post.info["mode"] == "sliding"
        assert reason in post.info["stateful_unavailable"]
        with pytest.raises(UsageError, match="cannot stream statefully"):
            Streamer(det, StreamConfig(mode="stateful"))
    mfcc = detector("gru", units=8)
    mfcc.frontend = Frontend(kind="mfcc", normalize="none")
    assert "top_db" in mfcc.stateful_reason()
    assert detector("tc_resnet8", causal=True).stateful_reason() is None


def test_causal_option_keeps_defaults_and_state_dict_keys() -> None:
    for name in ("tc_resnet8", "ds_cnn_s", "bc_resnet1"):
        plain = students.create(name, 5, 40)
        causal = students.create(name, 5, 40, causal=True)
        assert not any(isinstance(m, CausalConv2d) for m in plain.modules())
        assert any(isinstance(m, CausalConv2d) for m in causal.modules())
        assert list(plain.state_dict()) == list(causal.state_dict())
        causal.load_state_dict(plain.state_dict())
        x = torch.randn(1, 40, 60)
        assert plain.eval()(x).shape == causal.eval()(x).shape


def test_short_audio_and_bad_chunks() -> None:
    det = detector("tc_resnet8", causal=True)
    post = waveform_posteriors(det, torch.zeros(1000))  # under one hop
    assert post.times.shape == (0,) and post.scores.shape == (0, 4)
    streamer = Streamer(det)
    bad = torch.zeros(500)
    bad[3] = float("nan")
    with pytest.raises(BadValueError, match="NaN"):
        streamer.push(bad)
    with pytest.raises(BadValueError, match="mode"):
        StreamConfig(mode="fast")
    with pytest.raises(BadValueError, match="hop"):
        StreamConfig(hop_seconds=0)
    with pytest.raises(BadValueError, match="too short for crnn"):
        Streamer(detector("crnn", units=8), StreamConfig(window_seconds=0.03))


def test_a_stateful_stream_over_windows_as_long_as_the_training_clips_is_noted() -> None:
    from distill.deploy.stream import unseen_history_note

    det = detector("tc_resnet8", causal=True)
    assert det.describe()["training_clip_seconds"] is None  # unknown: no note
    stateful = {"mode": "stateful", "window_seconds": 1.0}
    assert unseen_history_note(det.describe(), stateful) is None
    trained_1s = {"training_clip_seconds": 1.0}
    note = unseen_history_note(trained_1s, stateful)
    assert note is not None and "trained on 1 s clips" in note and "--mode sliding" in note
    assert unseen_history_note(trained_1s, {"mode": "sliding", "window_seconds": 1.0}) is None
    assert unseen_history_note({"training_clip_seconds": 8.0}, stateful) is None  # heard history
    assert unseen_history_note(trained_1s, {"mode": "stateful", "window_seconds": 2.0})
    with_history = {"training_clip_seconds": 1.0, "training_history_seconds": 2.0}
    assert unseen_history_note(with_history, stateful) is None
