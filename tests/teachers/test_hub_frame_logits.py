"""Per-token class logits (`frame_logits`) of the timm and Hugging Face teachers, tiny random
models built offline: shapes, exact decomposition of mean-pooled heads, the head by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

from distill.teachers.hf import HFTeacher  # noqa: E402

import teachers  # noqa: E402

from .test_teacher_hf import AST_FE, SPEECH, WAV2VEC_FE, ast_model, speech_model  # noqa: E402
from .test_teacher_timm import FRONTEND, TINY  # noqa: E402


def timm_teacher(model_name: str = "vit_tiny_patch16_224", query: str = "cls", **model_kwargs):
    torch.manual_seed(0)
    return teachers.create(
        "timm", model_name=model_name, class_names=["a", "b", "c"], frontend=FRONTEND,
        model_kwargs={**TINY, **model_kwargs}, query=query,
    ).freeze()  # fmt: skip


def tokens_of(teacher, wave: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return teacher.model.forward_features(teacher._image(wave))


def check_shape(out, k: int) -> None:
    assert out.frame_logits is not None
    assert out.frame_logits.shape == (*out.hidden.shape[:2], k)
    assert out.frame_logits.shape[:2] == out.attention.shape


@pytest.mark.parametrize("seconds", [1.0, 2.5])
@pytest.mark.parametrize("class_token", [True, False])
def test_timm_mean_pooled_linear_head_decomposes_exactly(class_token: bool, seconds: float) -> None:
    teacher = timm_teacher(
        query="cls" if class_token else "first",
        global_pool="avg", fc_norm=False, class_token=class_token,
    )  # fmt: skip
    assert isinstance(teacher.model.fc_norm, torch.nn.Identity)
    out = teacher(torch.randn(2, int(16000 * seconds)))
    check_shape(out, 3)
    assert out.frame_logits.shape[1] == (26 if seconds == 1.0 else 63)  # last column padded
    torch.testing.assert_close(out.frame_logits.mean(dim=1), out.logits, atol=1e-5, rtol=0)


POOLS = [{}, {"global_pool": "avg"}, {"global_pool": "max"}]


@pytest.mark.parametrize("model_kwargs", POOLS, ids=["cls", "fc_norm", "max"])
def test_timm_head_per_position_is_the_head_after_pooling(model_kwargs: dict) -> None:
    teacher = timm_teacher(**model_kwargs)
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    check_shape(out, 3)
    m = teacher.model
    # the same parts reproduce the clip logits from the pooled features
    pooled = m.pool(tokens_of(teacher, wave))
    with torch.no_grad():
        again = teacher.head_per_position(pooled[:, None])[:, 0]
        torch.testing.assert_close(again, out.logits, atol=1e-5, rtol=1e-5)
        # by hand: fc_norm (a LayerNorm for avg / max pooling, else none), then the linear head
        x = out.hidden
        if "global_pool" in model_kwargs:
            norm = m.fc_norm
            assert isinstance(norm, torch.nn.LayerNorm)
            x = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        expected = x @ m.head.weight.T + m.head.bias
    torch.testing.assert_close(out.frame_logits, expected, atol=1e-5, rtol=1e-5)


def test_timm_distilled_averages_both_heads() -> None:
    teacher = timm_teacher("deit_tiny_distilled_patch16_224")
    out = teacher(torch.randn(2, 16000))
    check_shape(out, 3)
    m, h = teacher.model, out.hidden
    with torch.no_grad():
        expected = h @ m.head.weight.T + m.head.bias + h @ m.head_dist.weight.T + m.head_dist.bias
    torch.testing.assert_close(out.frame_logits, expected / 2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(m.head.weight, m.head_dist.weight)


def standardise(wave: torch.Tensor) -> torch.Tensor:
    centred = wave - wave.mean(1, keepdim=True)
    return centred / torch.sqrt(wave.var(1, unbiased=False, keepdim=True) + 1e-7)


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "wavlm"])
def test_speech_mean_pooling_decomposes_exactly(name: str) -> None:
    teacher = HFTeacher(speech_model(name), WAV2VEC_FE).freeze()
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    check_shape(out, 3)
    assert out.frame_logits.shape == (2, 49, 3)
    torch.testing.assert_close(out.frame_logits.mean(dim=1), out.logits, atol=1e-5, rtol=0)
    m = teacher.model
    with torch.no_grad():
        torch.testing.assert_close(out.frame_logits.mean(dim=1), m(standardise(wave)).logits)
        by_hand = (out.hidden @ m.projector.weight.T + m.projector.bias) @ m.classifier.weight.T
    torch.testing.assert_close(out.frame_logits, by_hand + m.classifier.bias, atol=1e-5, rtol=0)


def test_speech_weighted_layer_sum_and_first_frame() -> None:
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(**SPEECH, use_weighted_layer_sum=True)
    model = transformers.Wav2Vec2ForSequenceClassification(config).eval()
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))  # not the last layer alone
    teacher = HFTeacher(model, WAV2VEC_FE).freeze()
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    check_shape(out, 3)
    with torch.no_grad():
        torch.testing.assert_close(out.frame_logits.mean(dim=1), model(standardise(wave)).logits)
    # the head input is the weighted sum, not the last hidden state
    assert not torch.allclose(out.frame_logits, model.classifier(model.projector(out.hidden)))
    first = HFTeacher(speech_model("wav2vec2"), WAV2VEC_FE, pooling="first").freeze()(wave)
    check_shape(first, 3)
    torch.testing.assert_close(first.frame_logits[:, 0], first.logits, atol=1e-5, rtol=0)


def test_ast_classifier_on_each_time_column() -> None:
    teacher = HFTeacher(ast_model(), AST_FE).freeze()
    wave = torch.randn(2, 32000) * 0.1
    out = teacher(wave)
    check_shape(out, 3)
    assert out.frame_logits.shape == (2, 20, 3)  # 20 of 29 columns start in real frames
    m = teacher.model
    feats, _ = teacher.fbank(wave)
    with torch.no_grad():
        tokens = m.base_model(feats).last_hidden_state  # CLS, dist, 2 x 29 patches
        columns = tokens[:, 2:].reshape(2, 2, 29, -1).mean(dim=1)[:, :20]
        norm, dense = m.classifier.layernorm, m.classifier.dense
        x = F.layer_norm(columns, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        expected = x @ dense.weight.T + dense.bias
        # the clip logits are the same head on the mean of the CLS and distillation tokens
        torch.testing.assert_close(m.classifier((tokens[:, 0] + tokens[:, 1]) / 2), out.logits)
    torch.testing.assert_close(out.frame_logits, expected, atol=1e-5, rtol=1e-5)
