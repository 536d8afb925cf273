"""How sharp and how well placed a teacher's temporal attention is, under sharpening options.

For each choice of rollout layers the teacher runs once over a split; for each temperature its
a_T is sharpened (`p^(1/T)`, renormalised, as `losses.temporal_kd.teacher_temperature` does) and
summarised: mean entropy (and the uniform entropy for reference), the fraction of clips whose
argmax lies inside the true span, and the mean attention mass inside the span. The teacher's
accuracy on the split comes with each row (single-label data), so a teacher trained on other
data (say, a larger keyword bank) can be scored on exactly the clips the students are tested on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from distill.core.losses.base import sharpen
from distill.core.losses.temporal import entropy, span_coverage
from distill.core.module import argmax_inside_span
from distill.errors import BadValueError


def mass_inside_span(a: Tensor, spans: Tensor, clip_seconds: float) -> Tensor | None:
    """Mean attention mass on the time bins covered by the true spans (bins weighted by their
    covered fraction), over the clips that have a span; None when none has."""
    steps = a.shape[-1]
    bin_seconds = clip_seconds / steps
    covered = (span_coverage(spans.to(a.dtype), steps, clip_seconds) / bin_seconds).clamp(max=1.0)
    has_span = covered.sum(dim=1) > 0
    if not bool(has_span.any()):
        return None
    return (a * covered).sum(dim=1)[has_span].mean()


def parse_layers(text: str) -> list[int] | None:
    """`all` -> None; `2,3` or `-1` -> a list of layer indices."""
    if text.strip() == "all":
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise BadValueError(
            f"--layers {text!r}: expected 'all' or comma-separated integers"
        ) from err


@torch.no_grad()
def collect_attention(teacher: Any, loader: Any, limit_batches: int | None = None) -> dict:
    """The teacher's rolled-out attention (N, T_t), the spans (N, S, 2), and the number of clips
    and of correct argmax predictions (`correct` is None for multi-label targets)."""
    attention, spans, correct, clips = [], [], 0, 0
    single_label = True
    for k, batch in enumerate(loader):
        if limit_batches is not None and k >= limit_batches:
            break
        if batch.get("spans") is None:
            raise BadValueError(
                "the data has no keyword/event spans: nothing to place attention in"
            )
        out = teacher(batch["waveform"])
        attention.append(out.attention.float())
        spans.append(batch["spans"].float())
        label = batch["label"]
        single_label = single_label and label.dim() == 1
        if single_label:
            correct += int((out.logits.argmax(-1) == label).sum())
        clips += int(label.shape[0])
    width = max(s.shape[1] for s in spans)
    pad = torch.nn.functional.pad
    spans = [pad(s, (0, 0, 0, width - s.shape[1]), value=math.nan) for s in spans]
    return {
        "attention": torch.cat(attention),
        "spans": torch.cat(spans),
        "correct": correct if single_label else None,
        "clips": clips,
    }


def summarise(attention: Tensor, spans: Tensor, clip_seconds: float, temperature: float) -> dict:
    """Entropy, argmax-in-span and mass-in-span of `attention` sharpened at `temperature`."""
    a = sharpen(attention, temperature)
    inside = argmax_inside_span(a, spans, clip_seconds)
    mass = mass_inside_span(a, spans, clip_seconds)
    return {
        "temperature": temperature,
        "entropy": float(entropy(a).mean()),
        "uniform_entropy": math.log(a.shape[-1]),
        "argmax_in_span": None if inside is None else float(inside),
        "mass_in_span": None if mass is None else float(mass),
        "clips": int(a.shape[0]),
    }


def attention_table(
    cfg: DictConfig,
    split: str = "test",
    temperatures: Sequence[float] = (1.0, 0.5, 0.25),
    layer_sets: Sequence[list[int] | None] = (None,),
    limit_batches: int | None = None,
) -> list[dict]:
    """One row per (rollout layers, temperature) for the recipe's teacher on `split`."""
    from distill.core.teacher_source import load_teacher_for
    from distill.data import build_datamodule

    teacher = load_teacher_for(cfg)
    if teacher is None:
        raise BadValueError("teacher.kind=none: there is no teacher attention to inspect")
    datamodule = build_datamodule(cfg.data)
    rows = []
    for layers in layer_sets:
        teacher.layers = None if layers is None else list(layers)
        got = collect_attention(teacher, datamodule.dataloader(split), limit_batches)
        accuracy = None if got["correct"] is None else got["correct"] / got["clips"]
        for t in temperatures:
            row = summarise(got["attention"], got["spans"], cfg.data.clip_seconds, t)
            row["teacher_accuracy"] = accuracy
            rows.append({"layers": "all" if layers is None else ",".join(map(str, layers)), **row})
    return rows


@torch.no_grad()
def attention_samples(cfg: DictConfig, split: str = "test", n: int = 6) -> dict:
    """Waveforms, spans, labels, teacher predictions and a_T of the first `n` clips of `split`
    (rollout over the recipe's layers), in the form `distill.report.plots.plot_attention` reads."""
    from distill.core.teacher_source import load_teacher_for
    from distill.data import build_datamodule

    teacher = load_teacher_for(cfg)
    if teacher is None:
        raise BadValueError("teacher.kind=none: there is no teacher attention to plot")
    datamodule = build_datamodule(cfg.data)
    batch = next(iter(datamodule.dataloader(split)))
    wave = batch["waveform"][:n]
    out = teacher(wave)
    return {
        "waveform": wave.numpy(),
        "spans": batch["spans"][:n].numpy(),
        "labels": batch["label"][:n].numpy(),
        "predictions": out.logits.argmax(-1).numpy(),
        "teacher_attention": out.attention.float().numpy(),
        "class_names": list(datamodule.class_names),
        "clip_seconds": float(cfg.data.clip_seconds),
    }


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    lines = [
        "| rollout layers | temperature | entropy (nats) | uniform | argmax in span "
        "| mass in span | teacher accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layers']} | {r['temperature']:g} | {r['entropy']:.2f} | "
            f"{r['uniform_entropy']:.2f} | {pct(r['argmax_in_span'])} | {pct(r['mass_in_span'])} "
            f"| {pct(r.get('teacher_accuracy'))} |"
        )
    return "\n".join(lines)
