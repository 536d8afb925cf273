"""Teacher attention summaries: mass in span by hand, sharpening, and the command end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from distill.analysis.teacher_attention import (
    attention_table,
    mass_inside_span,
    parse_layers,
    summarise,
)
from tests.helpers.recipes import tiny_recipe


def test_mass_inside_span_by_hand() -> None:
    # 4 bins of 0.5 s over 2 s; span 0.25-1.0 s covers half of bin 0 and all of bin 1.
    a = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    spans = torch.tensor([[[0.25, 1.0]], [[math.nan, math.nan]]])
    assert float(mass_inside_span(a, spans, 2.0)) == pytest.approx(0.5 * 0.4 + 0.3)
    assert mass_inside_span(a[1:], spans[1:], 2.0) is None


def test_sharpening_lowers_entropy_and_keeps_the_argmax() -> None:
    a = torch.tensor([[0.1, 0.6, 0.2, 0.1]])
    spans = torch.tensor([[[0.5, 1.0]]])
    flat, sharp = summarise(a, spans, 2.0, 1.0), summarise(a, spans, 2.0, 0.5)
    p = torch.tensor([0.01, 0.36, 0.04, 0.01]) / 0.42  # a^2, renormalised
    assert sharp["entropy"] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    assert sharp["entropy"] < flat["entropy"]
    assert sharp["argmax_in_span"] == flat["argmax_in_span"] == 1.0
    assert sharp["mass_in_span"] == pytest.approx(0.36 / 0.42, rel=1e-5)
    assert flat["uniform_entropy"] == pytest.approx(math.log(4))


def test_parse_layers() -> None:
    assert parse_layers("all") is None
    assert parse_layers("2,3") == [2, 3]
    with pytest.raises(ValueError, match="--layers 'last'"):
        parse_layers("last")


def mass_in_span_by_hand(a: torch.Tensor, spans: torch.Tensor, clip_seconds: float) -> float:
    """Mean over clips with a span of the attention on each time bin times the fraction of
    that bin the spans cover, bins being equal slices of the clip."""
    steps = a.shape[-1]
    width = clip_seconds / steps
    start = torch.arange(steps) * width
    onset, offset = spans[..., 0, None], spans[..., 1, None]  # (B, S, 1) against (T,)
    overlap = torch.minimum(start + width, offset) - torch.maximum(start, onset)
    covered = (overlap.clamp(min=0).nan_to_num(0.0).sum(dim=1) / width).clamp(max=1.0)
    has_span = ~onset.isnan().all(dim=1).squeeze(-1)
    return float((a * covered).sum(dim=-1)[has_span].mean())


def test_table_over_a_saved_teacher(tiny_kws_bank: Path, tmp_path: Path) -> None:
    from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher

    from distill.data import build_datamodule

    cfg = tiny_recipe(tiny_kws_bank, tmp_path)
    datamodule = build_datamodule(cfg.data)
    teacher = SpectrogramTransformerTeacher.from_preset("tiny", class_names=datamodule.class_names)
    teacher.save_pretrained(cfg.teacher.path)
    rows = attention_table(cfg, "test", [1.0, 0.5], [None, [-1]], limit_batches=1)
    batch = next(iter(datamodule.dataloader("test")))
    with torch.no_grad():
        out = teacher.eval()(batch["waveform"])
    hits = (out.logits.argmax(-1) == batch["label"]).float()
    assert [r["teacher_accuracy"] for r in rows] == pytest.approx([float(hits.mean())] * 4)
    assert [(r["layers"], r["temperature"]) for r in rows] == [
        ("all", 1.0), ("all", 0.5), ("-1", 1.0), ("-1", 0.5)
    ]  # fmt: skip
    squared = out.attention.square() / out.attention.square().sum(-1, keepdim=True)  # T = 0.5
    for row, a in ((rows[0], out.attention), (rows[1], squared)):
        expected = mass_in_span_by_hand(a, batch["spans"], cfg.data.clip_seconds)
        assert row["mass_in_span"] == pytest.approx(expected, rel=1e-4)
    for flat, sharp in (rows[0:2], rows[2:4]):
        assert sharp["entropy"] < flat["entropy"] <= flat["uniform_entropy"] + 1e-6
        assert flat["argmax_in_span"] == sharp["argmax_in_span"]


def test_command_plots_teacher_attention(tiny_kws_bank: Path, tmp_path: Path) -> None:
    from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher
    from omegaconf import OmegaConf

    from distill.analysis.teacher_attention import attention_samples
    from distill.cli import main
    from distill.data import build_datamodule

    cfg = tiny_recipe(tiny_kws_bank, tmp_path)
    names = build_datamodule(cfg.data).class_names
    teacher = SpectrogramTransformerTeacher.from_preset("tiny", class_names=names)
    teacher.save_pretrained(cfg.teacher.path)
    samples = attention_samples(cfg, "test", n=4)
    assert samples["waveform"].shape == (4, 32000)
    assert samples["teacher_attention"].shape[0] == 4
    assert torch.allclose(torch.tensor(samples["teacher_attention"]).sum(-1), torch.ones(4))
    recipe = tmp_path / "recipe.yaml"
    OmegaConf.save(cfg, recipe)
    png = tmp_path / "a_T.png"
    args = ["attention", str(recipe), "--limit-batches", "1", "--temperatures", "1"]
    assert main([*args, "--plot", str(png)]) == 0
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
