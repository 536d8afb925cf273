"""Per-step outputs of the streaming students: causal, the step times exact, and equal to what
the stateful streaming runtime scores at every hop (the deployed network, per step)."""

from __future__ import annotations

import pytest
import torch
from distill.students.frames import frame_grid, frame_logits
from omegaconf import OmegaConf

from distill import students
from distill.config import RecipeConfig
from distill.core.frames import FrameOutputs
from distill.core.module import DistillModule
from distill.data.frontend import Frontend
from distill.deploy.stateful import StatefulRunner
from distill.errors import BadValueError

STREAMING = [
    ("tc_resnet8", {"causal": True}),
    ("ds_cnn_s", {"causal": True}),
    ("ds_cnn_m", {"causal": True}),
    ("bc_resnet1", {"causal": True}),
    ("gru", {}),
    ("crnn", {}),
    ("lstm_p", {}),
]
SR = 16000


def frontend() -> Frontend:
    return Frontend(n_mels=40, n_fft=640, win_length=640, hop_length=320, normalize="none")


def student(name: str, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return students.create(name, num_classes=5, n_features=40, **kwargs).eval()


@pytest.mark.parametrize(("name", "kwargs"), STREAMING)
def test_each_step_hears_exactly_its_frames(name: str, kwargs: dict) -> None:
    """Changing frame last_frames[t] + 1 leaves step t alone; changing frame last_frames[t]
    moves it: step t has heard frames 0 .. last_frames[t] and no later one."""
    model = student(name, kwargs)
    grid = frame_grid(model)
    frames = 40
    x = torch.randn(1, 40, frames)
    with torch.no_grad():
        base = frame_logits(model, model.forward_features(x), grid)
        last = grid.last_frames(base.shape[1])
        assert base.shape[1] == grid.steps(frames)
        for t in range(0, base.shape[1], max(1, base.shape[1] // 4)):
            frame = int(last[t])
            for shift, moves in ((1, False), (0, True)):
                if frame + shift >= frames:
                    continue
                y = x.clone()
                y[..., frame + shift] += 5.0
                out = frame_logits(model, model.forward_features(y), grid)
                moved = (out[0, t] - base[0, t]).abs().max().item()
                assert (moved > 1e-7) == moves, (t, shift, moved)


@pytest.mark.parametrize(("name", "kwargs"), STREAMING)
def test_the_last_step_over_the_whole_clip_is_the_clip_logits(name: str, kwargs: dict) -> None:
    model = student(name, kwargs)
    x = torch.randn(2, 40, 101)
    with torch.no_grad():
        frames = frame_logits(model, model.forward_features(x), frame_grid(model))
        assert torch.allclose(frames[:, -1], model(x), atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "window"),
    [
        ("tc_resnet8", {"causal": True}, 0.5),
        ("ds_cnn_s", {"causal": True}, 0.0),
        ("bc_resnet1", {"causal": True}, 0.5),
        ("gru", {}, 0.0),
        ("crnn", {}, 0.0),
    ],
)
def test_per_step_posteriors_are_what_the_stateful_runtime_scores(
    name: str, kwargs: dict, window: float
) -> None:
    """Fed the clip sample by sample, the stateful runtime gives step t's posterior exactly
    at step_seconds[t], and the previous step's one sample earlier."""
    model, clip = student(name, kwargs), 1.0
    fe = frontend()
    outputs = FrameOutputs(model, fe, clip, window)
    wav = torch.randn(int(clip * SR), generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        _, frames, times = outputs(model, fe(wav[None]))
    runner = StatefulRunner(model, fe, int(round((window or clip) * SR)), "softmax")
    fed, checked = 0, 0
    for t in range(frames.shape[1]):
        end = int(round(times[t].item() * SR))
        if end >= wav.numel():  # later steps read frames the clip's end pads
            break
        runner.advance(wav[fed : end - 1])
        before = runner.posterior()
        runner.advance(wav[end - 1 : end])
        fed = end
        now = runner.posterior()
        assert torch.allclose(now, frames[0, t].softmax(-1), atol=1e-5), t
        if t > 0:
            assert torch.allclose(before, frames[0, t - 1].softmax(-1), atol=1e-5), t
        else:
            assert before is None
        checked += 1
    assert checked >= frames.shape[1] - 3


def test_frame_outputs_refuse_what_the_runtime_could_not_stream() -> None:
    fe = frontend()
    with pytest.raises(BadValueError, match="build the student with student.kwargs.causal=true"):
        FrameOutputs(student("tc_resnet8", {}), fe, 1.0, 0.0)
    normalised = Frontend(normalize="utterance")
    with pytest.raises(BadValueError, match="frontend.kind=logmel frontend.normalize=running"):
        FrameOutputs(student("gru", {}), normalised, 1.0, 0.0)
    with pytest.raises(BadValueError, match="its state carries the whole stream"):
        FrameOutputs(student("gru", {}), fe, 1.0, 0.5)
    with pytest.raises(BadValueError, match="AttRNN is not one of them"):
        FrameOutputs(student("att_rnn", {}), fe, 1.0, 0.0)
    with pytest.raises(BadValueError, match="causal=false is not available"):
        student("gru", {"causal": False})


def test_the_module_trains_the_per_step_output_of_the_plain_student() -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = "/unused"
    cfg.student.kwargs = {"causal": True}
    cfg.frontend.normalize = "none"
    cfg.losses.timed.weight = 1.0
    cfg.losses.timed.target = "maxpool"
    classes = ["yes", "no", "_unknown_", "_silence_"]
    module = DistillModule(cfg, 4, "single_label", classes, clip_seconds=1.0)
    fresh = students.create("tc_resnet8", num_classes=4, n_features=40, causal=True)
    assert list(module.student_state_dict()) == list(fresh.state_dict())  # nothing added
    assert not list(module.aux.parameters())
    batch = {"waveform": torch.randn(3, SR), "label": torch.tensor([0, 2, 1]), "clip_id": "abc"}
    module.eval()  # no dropout: the last step is the clip's logits
    _, inputs, _ = module._step(batch, "val")
    assert inputs.frame_logits.shape == (3, 13, 4)  # 101 frames / stride 8
    assert torch.allclose(inputs.frame_logits[:, -1], inputs.logits, atol=1e-5)
    module.train()
    _, _, terms = module._step(batch, "train")
    terms["timed"].backward()
    assert module.student.fc.weight.grad.abs().sum() > 0
    assert module.student.conv0[0][0].weight.grad.abs().sum() > 0


def test_a_detector_pools_the_window_the_student_was_trained_with(tmp_path) -> None:
    """A per-step arm trained with losses.timed.window_seconds is detected with that window by
    default (student file and checkpoint); a clip-trained student with its clip length."""
    from distill.deploy.detector_model import load_detector_model
    from distill.pipeline.artifacts import save_student

    cfg = OmegaConf.structured(RecipeConfig)
    cfg.data.root = "/unused"
    cfg.student.kwargs = {"causal": True}
    cfg.frontend.normalize = "running"
    classes = ["yes", "no", "_unknown_", "_silence_"]
    plain = DistillModule(cfg, 4, "single_label", classes, clip_seconds=2.0)
    assert plain.detection_window_seconds == 2.0
    cfg.losses.timed.weight = 1.0
    cfg.losses.timed.target = "maxpool"
    cfg.losses.timed.window_seconds = 0.5
    timed = DistillModule(cfg, 4, "single_label", classes, clip_seconds=2.0)
    assert timed.detection_window_seconds == 0.5
    for module, window in ((plain, 2.0), (timed, 0.5)):
        path = tmp_path / f"student_{window}.safetensors"
        save_student(module, path)
        assert load_detector_model(path).window_seconds == window
    timed.detach_taps()  # as `distill fit` does before it saves the student
    save_student(timed, tmp_path / "student_detached.safetensors")
    assert load_detector_model(tmp_path / "student_detached.safetensors").window_seconds == 0.5
