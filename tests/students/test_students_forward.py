"""Forward shapes on 1 s and 8 s inputs, default taps and attention taps of every built-in."""

from __future__ import annotations

import pytest
import torch
from distill.students import FeatureTap

from distill import students

ALL = students.available()


def _n_features(name: str) -> int:
    paper = students.spec(name).paper_input
    return paper[0] if paper else 40


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_and_tap_grows_with_time(name: str) -> None:
    spec = students.spec(name)
    n_features = _n_features(name)
    model = students.create(name, num_classes=7, n_features=n_features).eval()
    lengths = []
    with FeatureTap(model, spec.default_tap, spec.tap_layout) as tap, torch.no_grad():
        for frames in (101, 801):
            x = torch.randn(2, n_features, frames)
            logits = model(x)
            assert logits.shape == (2, 7)
            feats = tap.features()
            assert feats.dim() == 3 and feats.shape[0] == 2, feats.shape
            lengths.append(feats.shape[1])
        assert torch.allclose(model.forward_head(model.forward_features(x)), logits)
    assert lengths[1] > lengths[0] > 1, f"{name}: tap lengths {lengths}"


@pytest.mark.parametrize("name", ["att_rnn", "mhatt_rnn"])
def test_attention_tap(name: str) -> None:
    spec = students.spec(name)
    heads = {"att_rnn": 1, "mhatt_rnn": 4}[name]
    model = students.create(name, num_classes=5, n_features=20).eval()
    seen = []
    module = dict(model.named_modules())[spec.attention_tap]
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(torch.randn(3, 20, 150))
    handle.remove()
    (weights,) = seen
    assert weights.shape == (3, heads, 150)
    assert torch.allclose(weights.sum(-1), torch.ones(3, heads), atol=1e-5)


def test_no_attention_tap_on_plain_models() -> None:
    assert students.spec("tc_resnet8").attention_tap is None
    assert students.spec("crnn").attention_tap is None


def test_bad_input_rank_is_reported() -> None:
    model = students.create("tc_resnet8", num_classes=3)
    with pytest.raises(ValueError, match=r"\(B, F, T\)"):
        model(torch.randn(2, 1, 40, 101))


def test_bc_resnet_rejects_feature_count_without_five_sub_bands() -> None:
    with pytest.raises(ValueError, match="multiple of 40"):
        students.create("bc_resnet1", num_classes=12, n_features=64)
    assert students.create("bc_resnet1", num_classes=12, n_features=80)(
        torch.randn(1, 80, 101)
    ).shape == (1, 12)


def test_timm_pretrained_path(tmp_path) -> None:
    import timm

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        students.create(
            "mobilenetv3_small", num_classes=4, pretrained_path=tmp_path / "missing.pth"
        )
    rgb = timm.create_model("mobilenetv3_small_100", pretrained=False)  # 3 channels, 1000 classes
    path = tmp_path / "imagenet_like.pth"
    torch.save(rgb.state_dict(), path)
    model = students.create("mobilenetv3_small", num_classes=4, pretrained_path=str(path))
    stem = model.backbone.conv_stem.weight
    assert stem.shape[1] == 1
    assert torch.allclose(stem, rgb.conv_stem.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.blocks[1][0].conv_pw.weight, rgb.blocks[1][0].conv_pw.weight)
    assert model(torch.randn(1, 40, 101)).shape == (1, 4)
