"""Causal feature normalisation in every streaming path: `normalize="running"` (moving mean and
variance per bin, started at the stream's first frame) and `normalize="frame"` stream exactly;
`normalize="utterance"` stays on the sliding window."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from distill.config import RecipeConfig, RecipeError, apply_overrides
from distill.data.frontend import (
    Frontend,
    build_frontend,
    frontend_kwargs,
    normalize_running,
    running_moments,
)
from distill.deploy.onnx_frontend import ExportableFrontend
from distill.deploy.onnx_stream import (
    STATEFUL_TOLERANCE,
    export_stateful,
    stateful_parity,
    step_seconds_for,
)
from distill.deploy.stateful import StreamingLogMel
from distill.deploy.stream import StreamConfig, Streamer, stream_posteriors, waveform_posteriors
from distill.errors import BadValueError, UsageError
from tests.deploy.stream_helpers import SR, detector, reference_stateful, train_briefly

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

ATOL = 1e-5  # posteriors of the stateful stream against the whole stream (float32 rounding)
CHUNKS = (593, 1600, 2501, 20011)  # under a hop, the hop, dividing no hop, over a second
CAUSAL = [
    ("tc_resnet8", {"causal": True}),
    ("gru", {"units": 24}),
    ("bc_resnet1", {"causal": True}),
]


def loop_reference(feats: torch.Tensor, frame_seconds: float, seconds: float) -> torch.Tensor:
    """The definition, frame by frame (the first implementation), in float64."""
    x = feats.double()
    a = 1.0 - math.exp(-frame_seconds / seconds)
    mean, sq = torch.empty_like(x), torch.empty_like(x)
    m, q = x[..., 0], x[..., 0] ** 2
    for t in range(x.shape[-1]):
        m = m + a * (x[..., t] - m)
        q = q + a * (x[..., t] ** 2 - q)
        mean[..., t], sq[..., t] = m, q
    return ((x - mean) / (sq - mean**2).clamp_min(1e-2).sqrt()).float()


def wave(seconds: float, seed: int = 0) -> torch.Tensor:
    """Noise whose level changes over time, with a tone burst, so the statistics move."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    level = 0.02 + 0.2 * (torch.sin(2 * torch.pi * 0.4 * t) > 0)
    tone = 0.3 * torch.sin(2 * torch.pi * 700 * t) * ((t > seconds / 2) & (t < seconds / 2 + 0.3))
    return level * torch.randn(t.numel(), generator=g) + tone


def chunks(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [x[i : i + size] for i in range(0, x.numel(), size)]


@pytest.mark.parametrize("seconds", [1.0, 0.3, 0.05, 5.0])
def test_vectorised_running_normalisation_equals_the_loop(seconds: float) -> None:
    fe = Frontend(normalize="none")
    feats = fe(torch.stack([wave(8.0, 0), 3 * wave(8.0, 1)]))  # (2, 40, 801)
    # several cumulative blocks: 0.05 s -> 250 frames per block; and a longer stream
    for x in (feats, torch.cat([feats, feats.flip(-1), feats], dim=-1)):
        got = normalize_running(x, fe.frame_seconds, seconds)
        ref = loop_reference(x, fe.frame_seconds, seconds)
        assert got.dtype == x.dtype and got.shape == x.shape
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_running_moments_carry_their_state_and_the_frontend_records_its_time_constant() -> None:
    x = torch.randn(3, 40, 300).double() * 2 - 6
    mean, square = running_moments(x, 0.05)
    m1, q1 = running_moments(x[..., :117], 0.05)
    m2, q2 = running_moments(x[..., 117:], 0.05, m1[..., -1], q1[..., -1])
    torch.testing.assert_close(torch.cat([m1, m2], -1), mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.cat([q1, q2], -1), square, atol=1e-12, rtol=0)
    assert running_moments(x[..., :0], 0.05)[0].shape == (3, 40, 0)
    # the time constant is a frontend parameter, saved with the frontend's settings
    assert frontend_kwargs()["running_seconds"] == 1.0
    cfg = OmegaConf.structured(RecipeConfig)
    assert cfg.frontend.running_seconds == 1.0
    cfg.frontend.normalize, cfg.frontend.running_seconds = "running", 0.25
    fe = build_frontend(cfg.frontend)
    assert fe.running_seconds == 0.25
    feats = Frontend(normalize="none")(wave(2.0)[None])
    torch.testing.assert_close(
        fe(wave(2.0)[None]), normalize_running(feats, fe.frame_seconds, 0.25), atol=1e-6, rtol=0
    )
    with pytest.raises(BadValueError, match="running_seconds must be > 0"):
        Frontend(normalize="running", running_seconds=0.0)


def test_recipe_checks_the_normalisation_choices() -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    for value in ("running", "frame", "none", "utterance"):
        assert apply_overrides(cfg, [f"frontend.normalize={value}"]).frontend.normalize == value
    with pytest.raises(RecipeError, match="frontend.normalize"):
        apply_overrides(cfg, ["frontend.normalize=causal"])
    with pytest.raises(RecipeError, match="frontend.running_seconds"):
        apply_overrides(cfg, ["frontend.running_seconds=0"])


@pytest.mark.parametrize("normalize", ["running", "frame"])
def test_streaming_frames_equal_the_whole_stream_through_the_frontend(normalize: str) -> None:
    fe = Frontend(normalize=normalize, running_seconds=0.4)
    x = wave(3.0)
    full = fe(x[None])[0]
    expected = (x.numel() - 256) // 160 + 1  # frames whose STFT window is complete
    for size in (7, 593, 2501):
        stream = StreamingLogMel(fe)
        frames = torch.cat([stream.push(c) for c in chunks(x, size)], dim=-1)
        assert frames.shape == (40, expected)
        torch.testing.assert_close(frames, full[:, :expected], atol=1e-5, rtol=0)


@pytest.mark.parametrize("normalize", ["running", "frame"])
@pytest.mark.parametrize("train", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize(("name", "kwargs"), CAUSAL, ids=[c[0] for c in CAUSAL])
def test_stateful_equals_the_plain_student_on_the_whole_stream(
    name: str, kwargs: dict, train: bool, normalize: str
) -> None:
    det = detector(name, normalize=normalize, **kwargs)
    if train:
        train_briefly(det.student)
    assert det.stateful_reason() is None
    x = wave(2.5)
    for size in CHUNKS:
        post = stream_posteriors(det, chunks(x, size), StreamConfig(mode="auto"))
        assert post.info["mode"] == "stateful" and len(post.times) == 25
        axis = -1 if post.info["pooling"].startswith("average") else 1
        # the reference: the whole stream through the frontend (running statistics from the
        # stream's first frame), the plain student on the frames heard by each hop
        ref = reference_stateful(det, x, post.times, post.info["window_steps"], axis)
        np.testing.assert_allclose(post.scores, ref, atol=ATOL, rtol=0)


def test_sliding_applies_the_frontend_per_window_and_utterance_stays_sliding() -> None:
    det = detector("tc_resnet8", normalize="running", window=0.8)  # SAME padding: sliding
    x = wave(2.0)
    post = stream_posteriors(det, chunks(x, 999), StreamConfig(hop_seconds=0.2))
    assert post.info["mode"] == "sliding"
    window, ends = int(0.8 * SR), [k * 3200 for k in range(1, 11)]
    padded = torch.cat([torch.zeros(window), x])
    windows = torch.stack([padded[e : e + window] for e in ends])
    with torch.no_grad():  # running statistics start at each window's first frame
        expected = det.student(det.frontend(windows)).softmax(-1).numpy()
    np.testing.assert_allclose(post.scores, expected, atol=ATOL, rtol=0)
    utterance = detector("tc_resnet8", normalize="utterance", causal=True)
    assert "normalize='utterance'" in utterance.stateful_reason()
    with pytest.raises(UsageError, match="cannot stream statefully"):
        Streamer(utterance, StreamConfig(mode="stateful"))
    with pytest.raises(UsageError, match="normalize='utterance'"):
        export_stateful(utterance, "unused.onnx", 0.08)


@pytest.mark.parametrize("normalize", ["running", "frame"])
def test_exportable_frontend_normalises_as_the_frontend(normalize: str) -> None:
    fe = Frontend(normalize=normalize, running_seconds=0.7)
    for x in (torch.stack([wave(1.0, 0), wave(1.0, 1)]), wave(8.0, 2)[None]):
        torch.testing.assert_close(ExportableFrontend(fe)(x), fe(x), atol=2e-4, rtol=0)


@pytest.mark.parametrize("normalize", ["running", "frame"])
@pytest.mark.parametrize(("name", "kwargs"), CAUSAL[:2], ids=[c[0] for c in CAUSAL[:2]])
def test_stateful_onnx_equals_the_pytorch_stream(name, kwargs, normalize, tmp_path) -> None:
    from distill.deploy.onnx_detector import read_metadata

    det = detector(name, normalize=normalize, **kwargs)
    train_briefly(det.student)
    step = step_seconds_for(det)
    path = export_stateful(det, tmp_path / "s.onnx", step)
    parity = stateful_parity(det, path, wave(12.0).numpy())  # chunks of 0.37 and 0.53 s
    assert parity["hops"] == int(round(12.0 / step))
    assert parity["max_abs_posterior_diff"] <= STATEFUL_TOLERANCE
    assert parity["max_abs_posterior_diff"] < 1e-6  # measured: below 1e-7
    meta = read_metadata(path)
    states = {s["name"]: s["shape"] for s in meta["states"]}
    assert meta["frontend"]["normalize"] == normalize
    assert meta["frontend"]["running_seconds"] == 1.0
    if normalize == "running":
        assert states["frontend.mean"] == states["frontend.var"] == [40]
    else:
        assert "frontend.mean" not in states


def test_stateful_onnx_from_metadata_alone_with_running_normalisation(tmp_path) -> None:
    """Zeros first, outputs fed back: the PyTorch stream with the stream-start statistics."""
    import onnxruntime as ort

    from distill.deploy.onnx_detector import read_metadata

    det = detector("tc_resnet8", normalize="running", causal=True, window=0.8)
    det.frontend.running_seconds = 0.3
    train_briefly(det.student)
    path = export_stateful(det, tmp_path / "s.onnx", 0.16)
    meta = read_metadata(path)
    assert meta["frontend"]["running_seconds"] == 0.3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {"int64": np.int64, "float32": np.float32}
    state = {s["input"]: np.zeros(s["shape"], dtypes[s["dtype"]]) for s in meta["states"]}
    outputs = ["logits", "ready", *[s["output"] for s in meta["states"]]]
    x, rows = wave(5.0).numpy(), []
    for i in range(0, len(x) - 2559, 2560):
        logits, ready, *new = sess.run(outputs, {"samples": x[None, i : i + 2560], **state})
        state = dict(zip(state, new))
        if ready[0]:
            rows.append(torch.from_numpy(logits[0]).softmax(-1).numpy())
    ref = waveform_posteriors(det, x, StreamConfig("stateful", 0.16))
    assert len(rows) == len(ref.scores) == 31
    np.testing.assert_allclose(np.stack(rows), ref.scores, atol=1e-6)


def test_per_step_training_takes_causal_normalisations() -> None:
    from distill import students
    from distill.core.frames import FrameOutputs

    model = students.create("tc_resnet8", 4, 40, causal=True)
    for normalize in ("running", "frame", "none"):
        FrameOutputs(model, Frontend(normalize=normalize), 1.0, 0.0)
    with pytest.raises(BadValueError, match="normalize=utterance depends on the whole clip"):
        FrameOutputs(model, Frontend(normalize="utterance"), 1.0, 0.0)
