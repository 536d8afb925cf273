"""The headline metrics take the targets the datasets yield."""

from __future__ import annotations

import pytest
import torch

from distill.core.metrics import build_metric


def test_macro_map_takes_float_multi_hot_targets() -> None:
    preds = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.8, 0.7], [0.6, 0.3, 0.9]])
    hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    metric = build_metric("multi_label", 3)
    metric.update(preds, hot)
    # class 0: both positives ranked first (AP 1); class 1: AP 1; class 2: the positive (0.9)
    # ranks first (AP 1) -> macro 1.0; flip class 2 to check the value moves
    assert float(metric.compute()) == pytest.approx(1.0)
    metric = build_metric("multi_label", 3)
    metric.update(preds, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    # class 2 positive at score 0.2, below 0.9 and 0.7: AP = 1/3; macro (1 + 1 + 1/3) / 3
    assert float(metric.compute()) == pytest.approx((1 + 1 + 1 / 3) / 3)


def test_macro_map_refuses_soft_targets() -> None:
    metric = build_metric("multi_label", 2)
    with pytest.raises(ValueError, match="0/1 multi-hot"):
        metric.update(torch.rand(2, 2), torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
