"""Parameter and MAC counts of the built-in students against REFERENCE.md (12 classes)."""

from __future__ import annotations

import pytest
import torch

from distill import students

# name: (params, relative tolerance), from REFERENCE.md sections 1, 2, 5 and 6.
PARAMS = {
    "tc_resnet8": (65.2e3, 0.01),
    "tc_resnet8_w15": (144.3e3, 0.01),
    "tc_resnet14": (135.9e3, 0.01),
    "tc_resnet14_w15": (303.0e3, 0.01),
    "bc_resnet1": (9.2e3, 0.01),
    "bc_resnet1_5": (17.2e3, 0.01),
    "bc_resnet2": (27.3e3, 0.01),
    "bc_resnet3": (54.2e3, 0.01),
    "bc_resnet6": (188e3, 0.01),
    "bc_resnet8": (321e3, 0.01),
    "crnn": (467.8e3, 0.03),
    "gru": (593.8e3, 0.03),
    "lstm_p": (545.9e3, 0.03),
    "att_rnn": (496.5e3, 0.03),
    "mhatt_rnn": (743.0e3, 0.03),
    "ds_cnn_s": (23.8e3, 0.03),
    "ds_cnn_m": (138e3, 0.03),
    "ds_cnn_l": (417e3, 0.03),
}

# MACs computed from the official code in REFERENCE.md (sections 1 and 6).
MACS = {
    "tc_resnet8": 1.52e6,
    "tc_resnet8_w15": 3.28e6,
    "tc_resnet14": 3.03e6,
    "tc_resnet14_w15": 6.68e6,
    "ds_cnn_s": 2.66e6,
    "ds_cnn_m": 9.82e6,
    "ds_cnn_l": 28.3e6,
}


def _paper_model(name: str):
    n_features, _ = students.spec(name).paper_input
    return students.create(name, num_classes=12, n_features=n_features)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_params_match_reference(name: str) -> None:
    expected, tolerance = PARAMS[name]
    got = students.count_params(_paper_model(name))
    assert abs(got / expected - 1) <= tolerance, f"{name}: {got} params vs {expected:.0f}"


@pytest.mark.parametrize("name", sorted(MACS))
def test_macs_match_reference(name: str) -> None:
    model = _paper_model(name)
    n_features, frames = students.spec(name).paper_input
    got = students.count_macs(model, (1, n_features, frames))
    assert abs(got / MACS[name] - 1) <= 0.01, f"{name}: {got} MACs vs {MACS[name]:.0f}"


def test_paper_inputs_are_the_papers() -> None:
    assert students.spec("tc_resnet8").paper_input == (40, 98)
    assert students.spec("bc_resnet1").paper_input == (40, 101)
    assert students.spec("crnn").paper_input == (20, 49)
    assert students.spec("ds_cnn_s").paper_input == (10, 49)
    assert students.spec("mobilenetv3_small").paper_input is None


def test_count_params_skips_frozen_and_macs_restore_mode() -> None:
    model = students.create("tc_resnet8", num_classes=12)
    total = students.count_params(model)
    model.fc.weight.requires_grad_(False)
    assert students.count_params(model) == total - model.fc.weight.numel()
    model.train()
    students.count_macs(model, (1, 40, 101))
    assert model.training
    with pytest.raises(ValueError, match="input_shape"):
        students.count_macs(model, (1, 40, 0))


def test_macs_count_fused_attention() -> None:
    class Attend(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, L, E)
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    # q @ k^T and a @ v: 2 * H * L * L * E multiply-accumulates per clip.
    assert students.count_macs(Attend(), (1, 2, 10, 8)) == 2 * 2 * 10 * 10 * 8


def test_teacher_macs_match_between_teach_and_bench() -> None:
    from distill.teachers.export import TeacherClassifier
    from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher

    from distill.pipeline.teach import teacher_macs

    teacher = SpectrogramTransformerTeacher.from_preset("tiny", class_names=["a", "b"]).eval()
    wrapper = TeacherClassifier(SpectrogramTransformerTeacher(teacher.config)).eval()
    frames = wrapper.teacher_frontend(torch.zeros(1, 16000)).shape
    assert teacher_macs(teacher, 16000) == students.count_macs(wrapper, tuple(frames))
    assert teacher_macs(teacher, 32000) > 1.9 * teacher_macs(teacher, 16000)
