"""Training clips with history (`student.history_seconds`): the student hears other clips
before each training clip and is scored on the clip's own steps, as a stateful stream runs it."""

from __future__ import annotations

import pytest
import torch
from distill.students.frames import frame_grid

from distill import students
from distill.core.frames import FrameOutputs
from distill.core.history import StreamHistory
from distill.data.frontend import Frontend
from distill.errors import BadValueError


def frontend(normalize: str = "none") -> Frontend:
    return Frontend(n_mels=40, n_fft=640, win_length=640, hop_length=320, normalize=normalize)


def student(name: str = "tc_resnet8", **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return students.create(name, num_classes=5, n_features=40, **kwargs).eval()


def test_history_is_the_end_of_the_clips_before_in_whole_strides() -> None:
    model = student(causal=True)  # time stride 8 frames
    history = StreamHistory(model, frontend(), seconds=0.5)  # 25 frames at 50 per second
    assert history.frames == 32 and history.seconds == pytest.approx(0.64)
    feats = torch.arange(3 * 2 * 20, dtype=torch.float32).reshape(3, 2, 20)
    out = history.extend(feats)
    assert out.shape == (3, 2, 52)
    assert torch.equal(out[..., 32:], feats)
    # clip 1 hears the last 12 frames of clip -1 (= 2), then all of clip 0
    assert torch.equal(out[1, :, :12], feats[2, :, 8:])
    assert torch.equal(out[1, :, 12:32], feats[0])


@pytest.mark.parametrize(
    ("name", "kwargs"), [("tc_resnet8", {"causal": True}), ("bc_resnet1", {"causal": True}),
                         ("gru", {})],
)  # fmt: skip
def test_the_clip_steps_hear_the_clip_frames_they_would_hear_alone(name, kwargs) -> None:
    """Changing clip frame j moves exactly the clip steps that heard it alone (last frame
    >= j): the clip's steps after the history are the clip's own steps."""
    model = student(name, **kwargs)
    history = StreamHistory(model, frontend(), seconds=0.4)
    grid = frame_grid(model)
    feats = torch.randn(2, 40, 48)
    last = grid.last_frames(grid.steps(48))
    with torch.no_grad():
        base = history.clip_steps(model.forward_features(history.extend(feats)), 48)
        for j in (0, 17, 47):
            moved = feats.clone()
            moved[0, :, j] += 3.0  # clip 0 (history of clip 1: not its heard clip frames)
            out = history.clip_steps(model.forward_features(history.extend(moved)), 48)
            time = grid.axis % out.dim() - 1  # in one clip's map
            diff = (out[0] - base[0]).abs().movedim(time, 0).flatten(1).amax(1)
            assert torch.equal(diff > 0, last >= j), j


def test_history_changes_the_clip_logits_and_per_step_outputs_keep_their_times() -> None:
    model = student(causal=True)
    fe = frontend("frame")
    history = StreamHistory(model, fe, seconds=1.0)
    feats = torch.randn(4, 40, 50)
    frames = FrameOutputs(model, fe, clip_seconds=1.0, window_seconds=0.0)
    with torch.no_grad():
        alone, steps_alone, times_alone = frames(model, feats)
        heard, steps_heard, times_heard = frames(model, feats, history)
        assert torch.allclose(history.clip_logits(model, feats), heard, atol=1e-6)
        assert torch.allclose(steps_heard[:, -1], heard, atol=1e-6)  # last step: the clip
    assert steps_heard.shape == steps_alone.shape and torch.equal(times_heard, times_alone)
    assert not torch.allclose(heard, alone, atol=1e-3)  # the student heard the history
    frames.remove()


def test_history_is_refused_where_a_stream_could_not_carry_it() -> None:
    with pytest.raises(BadValueError, match="causal=true"):
        StreamHistory(student(), frontend(), 1.0)  # SAME padding
    with pytest.raises(BadValueError, match="normalize=utterance"):
        StreamHistory(student(causal=True), frontend("utterance"), 1.0)
    with pytest.raises(BadValueError, match="MobileNet|students that stream"):
        StreamHistory(students.create("mobilenetv3_small", 5, 40), frontend(), 1.0)


def _module(**losses: object):
    from omegaconf import OmegaConf

    from distill.config import RecipeConfig
    from distill.core.module import DistillModule

    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = "/unused"
    cfg.student.kwargs = {"causal": True}
    cfg.student.history_seconds = 1.0
    cfg.frontend.normalize = "frame"
    for key, value in losses.items():
        OmegaConf.update(cfg, key, value)
    classes = ["yes", "no", "_unknown_", "_silence_"]
    return DistillModule(cfg, 4, "single_label", classes, clip_seconds=1.0)


@pytest.mark.parametrize("timed", [False, True])
def test_the_module_trains_with_history_and_evaluates_without(timed: bool) -> None:
    extra = {"losses.timed.weight": 1.0, "losses.timed.target": "maxpool"} if timed else {}
    module = _module(**extra)
    batch = {"waveform": torch.randn(3, 16000), "label": torch.tensor([0, 2, 1]), "clip_id": "abc"}
    module.eval()
    _, plain, _ = module._step(batch, "val")  # no history outside training
    with torch.no_grad():
        assert torch.allclose(plain.logits, module(batch["waveform"]), atol=1e-6)
        feats = module.features(batch["waveform"])
        _, heard, _ = module._step(batch, "train")
        assert torch.allclose(heard.logits, module._history.clip_logits(module.student, feats),
                              atol=1e-5)  # fmt: skip
    module.train()
    total, inputs, _ = module._step(batch, "train")
    total.backward()
    assert torch.isfinite(total) and module.student.fc.weight.grad.abs().sum() > 0
    if timed:
        assert inputs.frame_logits.shape == (3, 13, 4)  # the clip's steps only


def test_history_with_a_loss_on_the_student_time_features_is_refused() -> None:
    with pytest.raises(BadValueError, match="student.history_seconds=1 is not supported"):
        _module(**{"losses.temporal_kd.weight": 0.25})


def test_a_saved_student_keeps_its_history_and_the_stateful_note_skips_it(tmp_path) -> None:
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.stream import unseen_history_note
    from distill.pipeline.artifacts import read_student_info, save_student

    path = tmp_path / "student.safetensors"
    save_student(_module(), path)
    assert read_student_info(path)["history_seconds"] == pytest.approx(1.04)  # 13 strides
    info = load_detector_model(path, activation="softmax").describe()
    assert info["training_history_seconds"] == pytest.approx(1.04)
    assert info["training_clip_seconds"] == 1.0
    stateful = {"mode": "stateful", "window_seconds": 1.0}
    assert unseen_history_note(info, stateful) is None
    assert unseen_history_note({**info, "training_history_seconds": 0.0}, stateful)


def test_history_from_fillers_hears_only_the_non_keyword_clips_before() -> None:
    model = student(causal=True)
    history = StreamHistory(model, frontend(), seconds=0.3, source="fillers", filler_classes=[3, 4])
    assert history.frames == 16  # two strides of 8 frames
    feats = torch.arange(4 * 2 * 20, dtype=torch.float32).reshape(4, 2, 20)
    out = history.for_batch(torch.tensor([0, 3, 1, 4])).extend(feats)  # fillers: clips 1, 3
    # the filler before each clip, taken as a loop: 3, 3, 1, 1 (never a keyword clip)
    for clip, heard in enumerate([3, 3, 1, 1]):
        assert torch.equal(out[clip, :, :16], feats[heard, :, 4:])
        assert torch.equal(out[clip, :, 16:], feats[clip])
    # no filler in the batch: every clip's history comes from the clip before, as with "batch"
    alone = history.for_batch(torch.tensor([0, 1, 2, 0])).extend(feats)
    assert torch.equal(alone, StreamHistory(model, frontend(), seconds=0.3).extend(feats))
    assert torch.equal(alone[1, :, :16], feats[0, :, 4:])


def test_history_from_fillers_is_refused_without_a_filler_class() -> None:
    with pytest.raises(BadValueError, match="history_from must be one of"):
        StreamHistory(student(causal=True), frontend(), 1.0, source="noise")
    with pytest.raises(BadValueError, match="history_from=fillers needs a non-keyword class"):
        StreamHistory(student(causal=True), frontend(), 1.0, source="fillers")


def test_the_module_trains_with_history_from_fillers() -> None:
    module = _module(**{"student.history_from": "fillers"})
    assert module._history.filler_classes == [2, 3]
    labels = torch.tensor([0, 2, 1, 3])
    batch = {"waveform": torch.randn(4, 16000), "label": labels, "clip_id": "abcd"}
    module.train()
    total, inputs, _ = module._step(batch, "train")
    total.backward()
    assert torch.isfinite(total) and module.student.fc.weight.grad.abs().sum() > 0
    module.eval()
    with torch.no_grad():
        feats = module.features(batch["waveform"])
        _, heard, _ = module._step(batch, "train")
        bound = module._history.for_batch(labels)
        assert torch.equal(bound.sources, torch.tensor([1, 3]))
        assert torch.allclose(heard.logits, bound.clip_logits(module.student, feats), atol=1e-5)
