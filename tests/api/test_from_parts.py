"""DistillModule.from_parts: the project's module around a user's parts, no recipe file."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from distill import DistillError, DistillModule, students
from distill.core.teacher_source import OnlineTeacher
from tests.api.parts import CLASSES, TinyStudent, tiny_teacher, trainer


def batch(size: int = 2) -> dict:
    return {
        "waveform": torch.randn(size, 16000),
        "label": torch.arange(size) % 3,
        "clip_id": [f"c{i}" for i in range(size)],
    }


def test_registered_student_with_a_teacher_trains_and_reloads(tmp_path: Path) -> None:
    student = students.create("tc_resnet8", num_classes=3, n_features=40)
    module = DistillModule.from_parts(
        student,
        teacher=tiny_teacher(),
        losses={"logit_kd": 0.5, "temporal_kd": {"weight": 0.25, "target": "teacher"}},
        optim={"lr": 1e-3},
    )
    assert module.student is student and module.class_names == CLASSES
    assert isinstance(module.teacher_source, OnlineTeacher)
    cfg = module.cfg
    assert (cfg.student.name, cfg.student.target) == ("tc_resnet8", None)
    assert (cfg.losses.logit_kd.weight, cfg.losses.temporal_kd.weight) == (0.5, 0.25)
    assert cfg.optim.lr == 1e-3 and cfg.losses.task.weight == 1.0
    total, _, terms = module._step(batch(), "train")
    assert set(terms) == {"task", "logit_kd", "temporal_kd"} and torch.isfinite(total)
    # a checkpoint rebuilds the module from the recorded recipe alone
    clips = [{"waveform": torch.randn(16000), "label": i % 3, "clip_id": f"c{i}"} for i in range(4)]
    fit = trainer(tmp_path, 1)
    fit.fit(module, DataLoader(clips, batch_size=2))
    fit.save_checkpoint(tmp_path / "m.ckpt")
    again = DistillModule.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def test_a_class_of_ones_own_is_recorded_by_dotted_path() -> None:
    student = students.create(TinyStudent, num_classes=3, n_features=40, width=6)
    module = DistillModule.from_parts(
        student, losses={"temporal_kd": {"weight": 1.0, "target": "uniform"}},
        class_names=CLASSES, tap="encoder", tap_layout="BCT",
    )  # fmt: skip
    assert module.cfg.student.target == "tests.api.parts.TinyStudent"
    assert module.cfg.student.kwargs == {"width": 6}
    assert module.teacher_source is None  # the uniform control needs no teacher
    assert module.aux.terms["temporal_kd"].head.query.in_features == 6
    _, _, terms = module._step(batch(), "train")
    assert set(terms) == {"task", "temporal_kd"}


def test_a_student_not_built_by_create(tmp_path: Path) -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(40, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean(dim=2))

    module = DistillModule.from_parts(Plain(), class_names=CLASSES)
    assert module.cfg.student.target.endswith("Plain")
    assert set(module.student.state_dict()) == {"fc.weight", "fc.bias"}
    # its checkpoint reloads with the student given again
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": pl.__version__,
    }
    torch.save(checkpoint, tmp_path / "m.ckpt")
    again = DistillModule.load_from_checkpoint(
        tmp_path / "m.ckpt", student=Plain(), weights_only=True
    )
    torch.testing.assert_close(again.student.fc.weight, module.student.fc.weight)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "give class_names"),
        ({"class_names": ["a", "b"]}, "num_classes 3 \\(needed 2\\)"),
        ({"class_names": CLASSES, "frontend": {"n_mels": 64}}, "n_features 40 \\(needed 64\\)"),
        ({"class_names": CLASSES, "losses": {"temporal": 1.0}}, "temporal"),
        ({"class_names": CLASSES, "frontend": {"hop": 10}}, "hop"),
        ({"class_names": CLASSES, "task": "multi"}, "multi"),
    ],
)
def test_bad_parts_are_named(options: dict, match: str) -> None:
    student = students.create("tc_resnet8", num_classes=3, n_features=40)
    with pytest.raises(DistillError, match=match):
        DistillModule.from_parts(student, **options)
