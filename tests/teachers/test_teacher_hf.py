"""Hugging Face teachers from tiny random configs, built and saved offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from distill.teachers.hf import HFTeacher  # noqa: E402

import teachers  # noqa: E402

LABELS = {
    "num_labels": 3,
    "id2label": {0: "a", 1: "b", 2: "c"},
    "label2id": {"a": 0, "b": 1, "c": 2},
}
SPEECH = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 16, **LABELS,
}  # fmt: skip
WAV2VEC_FE = {"sampling_rate": 16000, "do_normalize": True}
AST_FE = {"sampling_rate": 16000, "num_mel_bins": 32, "max_length": 300, "do_normalize": True,
          "mean": -4.27, "std": 4.57}  # fmt: skip


def speech_model(name: str):
    torch.manual_seed(0)
    config_cls, model_cls = {
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2ForSequenceClassification),
        "hubert": (transformers.HubertConfig, transformers.HubertForSequenceClassification),
        "wavlm": (transformers.WavLMConfig, transformers.WavLMForSequenceClassification),
    }[name]
    return model_cls(config_cls(**SPEECH)).eval()


def ast_model():
    torch.manual_seed(0)
    config = transformers.ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_mel_bins=32, max_length=300, patch_size=16, frequency_stride=16, time_stride=10,
        **LABELS,
    )  # fmt: skip
    return transformers.ASTForAudioClassification(config).eval()


def standardise(wave: torch.Tensor) -> torch.Tensor:
    """Wav2Vec2FeatureExtractor's zero-mean unit-variance normalisation, per clip."""
    centred = wave - wave.mean(1, keepdim=True)
    return centred / torch.sqrt(wave.var(1, unbiased=False, keepdim=True) + 1e-7)


def assert_same(a, b) -> None:
    for x, y in [(a.logits, b.logits), (a.attention, b.attention), (a.spans, b.spans),
                 (a.hidden, b.hidden)]:  # fmt: skip
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "wavlm"])
def test_speech_models_round_trip(name: str, tmp_path) -> None:
    teacher = HFTeacher(speech_model(name), WAV2VEC_FE).freeze()
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    assert out.logits.shape == (2, 3) and teacher.class_names == ["a", "b", "c"]
    assert out.attention.shape == (2, 49) and out.spans.shape == (49, 2)  # 20 ms frames
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2))
    assert out.hidden.shape == (2, 49, 32)
    assert teacher.query == "first"
    # pooling "mean" is exactly the Hugging Face head on normalised input.
    normed = standardise(wave)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, teacher.model(normed).logits)
    teacher.save_pretrained(tmp_path / name)
    loaded = teachers.create("hf", path=str(tmp_path / name)).freeze()
    assert_same(out, loaded(wave))
    assert isinstance(teachers.load_teacher(tmp_path / name), HFTeacher)


def test_first_frame_pooling_and_saved_options(tmp_path) -> None:
    teacher = HFTeacher(speech_model("wav2vec2"), WAV2VEC_FE, pooling="first", layers=[-1]).freeze()
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    m = teacher.model
    normed = standardise(wave)
    with torch.no_grad():
        hidden = m.wav2vec2(normed).last_hidden_state
        torch.testing.assert_close(out.logits, m.classifier(m.projector(hidden[:, 0])))
    teacher.save_pretrained(tmp_path / "t")
    loaded = teachers.create("hf", path=str(tmp_path / "t"))
    assert (loaded.pooling, loaded.layers) == ("first", [-1])
    assert teachers.create("hf", path=str(tmp_path / "t"), pooling="mean").pooling == "mean"


def test_wav2vec_forced_window(window) -> None:
    # 2 s: 99 frames of 20 ms; frames 50..73 span 1.00 .. 1.485 s.
    teacher = HFTeacher(speech_model("wav2vec2"), WAV2VEC_FE).freeze()
    window.force(teacher, list(range(50, 74)))
    out = teacher(torch.randn(1, 32000))
    window.check(out)
    torch.testing.assert_close(out.spans[50], torch.tensor([1.0, 1.025]))


def test_ast_round_trip_and_fbank_parity(tmp_path) -> None:
    teacher = HFTeacher(ast_model(), AST_FE).freeze()
    wave = torch.randn(2, 32000) * 0.1
    feats, frames = teacher.fbank(wave)
    assert frames == 198  # 1 + (32000 - 400) // 160
    extractor = transformers.ASTFeatureExtractor(**AST_FE)
    ref = extractor(wave[0].numpy().astype(np.float32), sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(feats[0], ref["input_values"][0], atol=1e-4, rtol=1e-4)
    out = teacher(wave)
    # 29 time columns of which 20 start inside the 198 real frames; 2 frequency patches
    assert out.attention.shape == (2, 20) and out.hidden.shape == (2, 20, 32)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2))
    with torch.no_grad():
        torch.testing.assert_close(out.logits, teacher.model(feats).logits)
    teacher.save_pretrained(tmp_path / "ast")
    assert_same(out, teachers.load_teacher(tmp_path / "ast").freeze()(wave))


def test_ast_forced_window(window) -> None:
    # Column j covers Kaldi frames 10j .. 10j + 15 = [0.1 j, 0.1 j + 0.175] s: j = 10..13 lie
    # inside 1.0 .. 1.5 s. Tokens: CLS, dist, then 2 frequency rows x 29 columns.
    teacher = HFTeacher(ast_model(), AST_FE).freeze()
    window.force(teacher, [2 + f * 29 + j for f in (0, 1) for j in range(10, 14)], prefix=[0, 1])
    out = teacher(torch.randn(1, 32000))
    window.check(out)
    assert out.attention[0, 10:14].sum() == pytest.approx(1.0)


def test_no_attentions_detected() -> None:
    teacher = HFTeacher(speech_model("wav2vec2"), WAV2VEC_FE).freeze()
    teacher.model.set_attn_implementation("sdpa")
    with pytest.raises(RuntimeError, match="no attention weights"):
        teacher(torch.randn(1, 16000))


def test_loading_errors(tmp_path) -> None:
    with pytest.raises(OSError, match="download it first"):
        teachers.create("hf", path="no-such-org/no-such-audio-model")
    speech_model("wav2vec2").save_pretrained(tmp_path / "bare")
    with pytest.raises(OSError, match="feature extractor"):
        teachers.create("hf", path=str(tmp_path / "bare"))
    teacher = teachers.create("hf", path=str(tmp_path / "bare"), feature_extractor=WAV2VEC_FE)
    assert teacher.sample_rate == 16000
    with pytest.raises(ValueError, match="pooling"):
        HFTeacher(ast_model(), AST_FE, pooling="first")
    with pytest.raises(ValueError, match="max_length"):
        HFTeacher(ast_model(), AST_FE)(torch.randn(1, 16000 * 4))
