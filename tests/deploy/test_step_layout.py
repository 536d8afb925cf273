"""The stateful step with its convolution states channel-last (the layout LiteRT exports): the
same logits as the channel-first step, states of the transposed shapes."""

from __future__ import annotations

import pytest
import torch

from distill.deploy.onnx_stream import step_seconds_for
from distill.deploy.stateful_step import build_step_model, initial_states
from tests.deploy.stream_helpers import detector, train_briefly

SR = 16000


def _steps(step, specs, chunks):
    states, rows = initial_states(specs), []
    with torch.no_grad():
        for chunk in chunks:
            logits, _ready, *states = step(chunk, *states)
            rows.append(logits)
    return torch.cat(rows)


@pytest.mark.parametrize(
    ("name", "normalize"),
    [("tc_resnet8", "running"), ("ds_cnn_s", "none"), ("bc_resnet1", "frame")],
)
def test_channel_last_states_give_the_channel_first_logits(name, normalize) -> None:
    det = detector(name, normalize=normalize, causal=True)
    train_briefly(det.student)
    step_samples = round(step_seconds_for(det) * SR)
    torch.manual_seed(2)
    chunks = list(torch.randn(15, 1, step_samples).mul(0.1).unbind(0))
    first, specs_first = build_step_model(det.student, det.frontend, SR, step_samples)
    last, specs_last = build_step_model(
        det.student, det.frontend, SR, step_samples, channels_last=True
    )
    assert torch.allclose(_steps(first, specs_first, chunks), _steps(last, specs_last, chunks),
                          atol=1e-5)  # fmt: skip
    conv_states = [(a, b) for a, b in zip(specs_first, specs_last) if len(a[1]) == 4]
    assert conv_states, "the student has convolution states"
    for (name_first, (n, c, h, t)), (name_last, shape) in conv_states:
        assert name_first == name_last
        if name_first != "ring":
            assert shape == (n, h, t, c)
