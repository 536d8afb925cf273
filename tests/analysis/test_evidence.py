"""Class evidence over time: it must add up to the student's own logit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distill import students
from distill.analysis.evidence import class_activation


def test_class_activation_averages_to_the_predicted_logit() -> None:
    torch.manual_seed(0)
    model = students.create("tc_resnet8", num_classes=12, n_features=40).eval()
    feats = torch.randn(3, 40, 201)
    with torch.no_grad():
        cam = class_activation(model, feats)
        logits = model(feats)
    assert cam.shape[0] == 3 and cam.shape[1] > 10
    predicted = logits.argmax(dim=1)
    expected = logits.gather(1, predicted[:, None]).squeeze(1)
    assert torch.allclose(cam.mean(dim=1), expected, atol=1e-5)


def test_students_without_a_pooled_linear_head_are_refused() -> None:
    with pytest.raises(TypeError, match="GRU has no global-pool"):
        class_activation(nn.GRU(4, 4), torch.randn(1, 4, 10))
