"""FeatureTap and to_time_features: layouts, errors, and complete hook removal."""

from __future__ import annotations

import pytest
import torch
from distill.students import FeatureTap, to_time_features
from torch import nn

from distill import students


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_bcft_averages_frequency_then_puts_time_second() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = to_time_features(x, "BCFT")
    assert out.shape == (2, 5, 3)
    assert torch.equal(out, x.mean(dim=2).permute(0, 2, 1))
    assert out[1, 4, 2] == x[1, 2, :, 4].mean()


def test_other_layouts() -> None:
    x = torch.randn(2, 6, 9)
    assert torch.equal(to_time_features(x, "BTC"), x)
    assert torch.equal(to_time_features(x, "BCT"), x.transpose(1, 2))
    assert torch.equal(to_time_features(x, "TBC"), x.transpose(0, 1))
    y = torch.randn(2, 3, 9, 4)  # B C T F
    assert torch.allclose(to_time_features(y, "BCTF"), y.mean(3).transpose(1, 2))
    assert torch.equal(to_time_features((x, "state"), "BTC"), x)


@pytest.mark.parametrize("layout", ["BCX", "BCC", "BFT", "bct", ""])
def test_bad_layouts_are_rejected(layout: str) -> None:
    with pytest.raises(ValueError, match="layout"):
        to_time_features(torch.randn(2, 3, 4), layout)


def test_layout_rank_mismatch() -> None:
    with pytest.raises(ValueError, match="4-D"):
        to_time_features(torch.randn(2, 3, 4), "BCFT")


def test_tap_reads_rnn_tuple_output_and_keeps_graph() -> None:
    model = students.create("gru", num_classes=3, n_features=20)
    with FeatureTap(model, "rnn", "BTC") as tap:
        model(torch.randn(2, 20, 30))
        feats = tap.features()
        assert feats.shape == (2, 30, 400)
        assert feats.requires_grad
        feats.sum().backward()
    assert model.rnn.weight_ih_l0.grad is not None


def test_remove_leaves_no_hooks() -> None:
    model = students.create("bc_resnet1", num_classes=3)
    assert _no_hooks(model)
    tap = FeatureTap(model, "neck", "BCFT")
    assert not _no_hooks(model)
    model(torch.randn(1, 40, 101))
    assert tap.features().shape == (1, 101, 32)
    tap.remove()
    tap.remove()  # idempotent
    assert _no_hooks(model)
    with pytest.raises(RuntimeError, match="no forward pass"):
        tap.features()
    with FeatureTap(model, "stages.3", "BCFT"):
        pass
    assert _no_hooks(model)


def test_tap_before_forward_is_an_error() -> None:
    model = students.create("tc_resnet8", num_classes=3)
    with FeatureTap(model, "blocks", "BCFT") as tap, pytest.raises(RuntimeError, match="blocks"):
        tap.features()


def test_unknown_module_lists_valid_names() -> None:
    model = students.create("tc_resnet8", num_classes=3)
    with pytest.raises(KeyError) as info:
        FeatureTap(model, "blockz", "BCFT")
    message = str(info.value)
    assert "'blockz'" in message and "Close matches: blocks" in message
    assert "conv0" in message and "blocks.2.conv2" in message
    assert _no_hooks(model)
