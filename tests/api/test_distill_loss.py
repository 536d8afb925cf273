"""DistillLoss: the registry's KD terms on a student of one's own, plain tensors in, a loss out."""

from __future__ import annotations

import pytest
import torch
from distill.teachers.base import TeacherOutput
from torch import nn

from distill import BadValueError, DistillError, DistillLoss, LossInputs, UsageError, students
from tests.api.parts import TinyStudent, tiny_teacher

FEATURES = torch.randn(3, 40, 20, generator=torch.Generator().manual_seed(1))


def tiny(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return students.create(TinyStudent, num_classes=3, n_features=40, **kwargs)


def test_temporal_and_logit_kd_by_hand() -> None:
    """The weighted sum equals KL(a_T || softmax(c' q)) and T^2 KL of the softened logits,
    computed here from the head's weights and the tapped features."""
    student = tiny()
    kd = DistillLoss(
        student, None, {"temporal_kd": 2.0, "logit_kd": {"weight": 0.5, "temperature": 2.0}},
        tap="encoder", tap_layout="BCT", channels=8,
    )  # fmt: skip
    captured = {}
    student.encoder.register_forward_hook(lambda m, i, o: captured.update(c=o.transpose(1, 2)))
    logits = student(FEATURES)
    a_t = torch.softmax(torch.randn(3, 10), dim=-1)  # the student's T' = 10: no resampling
    t_logits = torch.randn(3, 3)
    total = kd(logits, teacher_output=TeacherOutput(t_logits, a_t))
    q = kd.terms["temporal_kd"].head.query.weight  # (1, C)
    a_s = torch.softmax((captured["c"] @ q.T).squeeze(-1), dim=-1)
    temporal = (a_t * (a_t.log() - a_s.log())).sum(-1).mean()
    p_t, log_p_s = torch.softmax(t_logits / 2, -1), torch.log_softmax(logits / 2, -1)
    logit = (p_t * (p_t.log() - log_p_s)).sum(-1).mean() * 4
    torch.testing.assert_close(total, 2.0 * temporal + 0.5 * logit)
    assert set(kd.last_terms) == {"temporal_kd", "logit_kd"}


def test_registered_student_default_tap_and_gradients() -> None:
    student = students.create("tc_resnet8", num_classes=3, n_features=40)
    teacher = tiny_teacher()
    features = torch.randn(2, 40, 101)
    kd = DistillLoss(student, teacher, example_input=features)  # default: temporal KD
    loss = kd(student(features), torch.randn(2, 16000))
    loss.backward()
    assert kd.terms["temporal_kd"].head.query.weight.grad is not None
    assert not any(p.grad is not None for p in teacher.parameters())
    assert not teacher.training
    assert "teacher" not in dict(kd.named_modules()) and not list(kd.buffers())


def test_probe_leaves_every_module_as_it_was() -> None:
    student = tiny()
    student.encoder[1].eval()  # one BatchNorm frozen by the user
    running = student.encoder[1].running_mean.clone()
    DistillLoss(student, None, {"temporal_kd": {"weight": 1, "target": "uniform"}},
                tap="encoder", tap_layout="BCT", example_input=FEATURES)  # fmt: skip
    assert student.training and not student.encoder[1].training
    assert torch.equal(student.encoder[1].running_mean, running)  # ran in eval mode


def test_remove_takes_the_hooks_off() -> None:
    student = tiny()
    kd = DistillLoss(student, None, {"temporal_kd": {"weight": 1, "target": "uniform"}},
                     tap="encoder", tap_layout="BCT", channels=8)  # fmt: skip
    assert student.encoder._forward_hooks
    kd.remove()
    kd.remove()
    assert not student.encoder._forward_hooks
    with pytest.raises(UsageError, match="remove"):
        kd(student(FEATURES))


class EnergyTerm(nn.Module):
    """A term of one's own: mean squared tapped feature."""

    needs_features = True

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return inputs.time_features.pow(2).mean()


def test_a_term_of_ones_own_and_weight_zero() -> None:
    student = tiny()
    kd = DistillLoss(student, None, {"energy": (0.5, EnergyTerm()), "logit_kd": 0.0},
                     tap="encoder", tap_layout="BCT")  # fmt: skip
    logits = student(FEATURES)
    features = student.encoder(FEATURES)
    torch.testing.assert_close(kd(logits), 0.5 * features.pow(2).mean())
    assert list(kd.terms) == ["energy"]


@pytest.mark.parametrize(
    ("losses", "match"),
    [
        ({"temporal": 1.0}, "unknown loss term 'temporal'"),
        ({"task": 1.0}, "the task loss is your own"),
        ({"temporal_kd": {"weight": 1, "targett": "span"}}, "targett.*valid keys"),
        ({"temporal_kd": {"target": "span"}}, "give its weight"),
        ({"temporal_kd": -1.0}, "losses.temporal_kd.weight"),
        ({"logit_kd": 0.0}, "at least one term"),
        ({"mine": (1.0, "not a module")}, "nn.Module instance"),
    ],
)
def test_bad_losses_are_named(losses: dict, match: str) -> None:
    with pytest.raises(DistillError, match=match):
        DistillLoss(tiny(), None, losses, tap="encoder", tap_layout="BCT", channels=8)


def test_missing_inputs_are_named() -> None:
    with pytest.raises(BadValueError, match="no default feature tap"):
        DistillLoss(tiny(), None, {"temporal_kd": 1.0}, channels=8)
    with pytest.raises(UsageError, match="channels= or example_input="):
        DistillLoss(tiny(), None, {"temporal_kd": 1.0}, tap="encoder", tap_layout="BCT")
    student = tiny()
    kd = DistillLoss(student, None, {"logit_kd": 1.0})
    with pytest.raises(UsageError, match="logit_kd need"):
        kd(student(FEATURES), torch.randn(3, 16000))
    with pytest.raises(UsageError, match="give the waveform"):
        kd(student(FEATURES))
