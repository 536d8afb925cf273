"""timm ViT / DeiT teachers on spectrograms, tiny configs."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")

from distill.teachers.timm_vit import TimmViTTeacher  # noqa: E402

import teachers  # noqa: E402

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
FRONTEND = {"n_mels": 32}


def vit(model_name: str = "vit_tiny_patch16_224", **kw) -> TimmViTTeacher:
    torch.manual_seed(0)
    return teachers.create(
        "timm", model_name=model_name, class_names=["a", "b"], model_kwargs=TINY,
        frontend=FRONTEND, **kw,
    ).freeze()  # fmt: skip


@pytest.mark.parametrize(
    ("model_name", "prefix"), [("vit_tiny_patch16_224", 1), ("deit_tiny_distilled_patch16_224", 2)]
)
def test_forward_and_round_trip(model_name: str, prefix: int, tmp_path) -> None:
    teacher = vit(model_name)
    assert teacher.num_prefix == prefix
    wave = torch.randn(2, 16000)
    out = teacher(wave)
    # 101 frames, time patches of 4 -> 26 columns (last one zero-padded); 2 frequency patches
    assert out.logits.shape == (2, 2)
    assert out.attention.shape == (2, 26) and out.spans.shape == (26, 2)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2))
    assert out.hidden.shape == (2, 26, 32)
    torch.testing.assert_close(teacher.classify(wave), out.logits, atol=1e-5, rtol=1e-4)
    teacher.save_pretrained(tmp_path / "t")
    loaded = teachers.load_teacher(tmp_path / "t").freeze()
    assert isinstance(loaded, TimmViTTeacher)
    after = loaded(wave)
    for a, b in [(out.logits, after.logits), (out.attention, after.attention),
                 (out.hidden, after.hidden)]:  # fmt: skip
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_other_lengths() -> None:
    out = vit()(torch.randn(1, 40000))  # 2.5 s: 251 frames -> 63 columns
    assert out.attention.shape == (1, 63)
    assert out.spans[-1, 1] == pytest.approx(2.5)


def test_forced_window(window) -> None:
    # 2 s: 201 frames -> 51 columns; column j covers frames 4j .. 4j + 3 (centered 30 ms
    # windows): [0.04 j - 0.015, 0.04 j + 0.045] s, so j = 26..36 lie inside 1.0 .. 1.5 s.
    teacher = vit("deit_tiny_distilled_patch16_224")
    window.force(teacher, [2 + f * 51 + j for f in (0, 1) for j in range(26, 37)], prefix=[0, 1])
    out = teacher(torch.randn(1, 32000))
    window.check(out)
    torch.testing.assert_close(out.spans[26], torch.tensor([1.025, 1.085]))


def test_fused_attention_switched_off() -> None:
    teacher = vit()
    assert all(not blk.attn.fused_attn for blk in teacher.model.blocks)
    teacher.model.blocks[0].attn.fused_attn = True
    with pytest.raises(RuntimeError, match="captured 1 attention maps for 2 blocks"):
        teacher(torch.randn(1, 16000))


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        vit(patch_size=[10, 4])
    with pytest.raises(ValueError, match="unknown keys"):
        vit(img_size=3)
    with pytest.raises(FileNotFoundError, match="pretrained_file"):
        vit(pretrained_file="/nonexistent/vit.safetensors")
