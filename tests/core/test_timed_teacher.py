"""The teacher's per-token class logits for `frame_logit`: the in-house teacher's head on each
time position, checked against its clip logits, and kept by the teacher cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distill.teachers.base import TeacherOutput
from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher

from distill.caches.teacher_cache import TeacherCache
from distill.errors import BadValueError

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def test_per_token_logits_of_a_mean_pooled_teacher_average_to_its_clip_logits() -> None:
    """Without a CLS token the clip logits are the head on the mean token; the head is linear,
    so they are the mean of the per-position logits (full-height patches: one token per time
    position; 15840 samples are 100 frames at the 10 ms hop, 50 whole patches of 2 frames)."""
    torch.manual_seed(0)
    teacher = SpectrogramTransformerTeacher.build(CLASSES, preset="tiny", cls_token=False).eval()
    wav = torch.randn(2, 15840)
    with torch.no_grad():
        out = teacher(wav)
    assert out.frame_logits.shape == (2, out.attention.shape[1], len(CLASSES))
    assert torch.allclose(out.frame_logits.mean(dim=1), out.logits, atol=1e-5)
    assert torch.allclose(out.frame_logits, teacher.head(out.hidden), atol=1e-6)


def test_teacher_output_checks_the_frame_logits_shape() -> None:
    with pytest.raises(BadValueError, match=r"frame_logits must be \(B, T_t, K\) = \(2, 5, 3\)"):
        TeacherOutput(torch.zeros(2, 3), torch.zeros(2, 5), frame_logits=torch.zeros(2, 5, 4))


def test_the_teacher_cache_keeps_the_per_token_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    out = TeacherOutput(
        torch.randn(3, 4),
        torch.softmax(torch.randn(3, 6), dim=-1),
        frame_logits=torch.randn(3, 6, 4),
    )
    cache = TeacherCache(tmp_path / "cache", {"teacher": "t"})
    cache.write("train", [(["a", "b", "c"], out)], total=3)
    got = cache.lookup("train", ["c", "a"])
    # stored as float16: about 3 significant digits
    assert torch.allclose(got.frame_logits, out.frame_logits[[2, 0]], atol=2e-3)
    plain = TeacherOutput(out.logits, out.attention)  # a teacher without per-token logits
    cache.write("val", [(["a", "b", "c"], plain)], total=3)
    assert cache.lookup("val", ["a"]).frame_logits is None
