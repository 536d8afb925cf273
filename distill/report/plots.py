"""Figures of a `distill compare` report, drawn with matplotlib's Agg canvas into PNG files."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from distill.extras import require
from distill.files import atomic_path

require("matplotlib", "report", "the report's figures")  # then matplotlib itself:
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

DPI = 110
STUDENT_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
ARM_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
CONTROL_HATCH = "///"
SPAN_COLOUR = "#f2b134"
TITLE_CHARS = 62  # characters per line of a clip title in the attention plot


def _tick(value: float, _pos: Any = None) -> str:
    """Plain tick labels on log axes: 1.5M, 300k, 0.06."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _minor_tick(value: float, _pos: Any = None) -> str:
    """Labels for the 2x and 5x minor ticks of a log axis only."""
    mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
    return _tick(value) if round(mantissa) in (2, 5) else ""


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:  # disk full: no partial picture left
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def _ordered_arms(summary: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(method arms, control arms), each in first-seen order."""
    methods: list[str] = []
    controls: list[str] = []
    for s in summary:
        target = controls if s["group"] == "control" else methods
        if s["arm"] not in target:
            target.append(s["arm"])
    return methods, controls


def _students(summary: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(s["student"] for s in summary))


def _arm_positions(methods: list[str], controls: list[str]) -> dict[str, float]:
    """x position of each arm: methods from 0, controls after a one-slot gap."""
    pos = {arm: float(i) for i, arm in enumerate(methods)}
    start = len(methods) + (1.0 if methods else 0.0)
    pos.update({arm: start + i for i, arm in enumerate(controls)})
    return pos


def _bar_legend(fig: Figure, students: list[str], controls: bool) -> None:
    """A legend outside the axes: one colour per student, and the hatching of controls."""
    handles = [
        Patch(facecolor=STUDENT_COLOURS[j % len(STUDENT_COLOURS)], label=s)
        for j, s in enumerate(students)
    ]
    if controls:
        handles.append(
            Patch(
                facecolor="white", edgecolor="0.3", hatch=CONTROL_HATCH, label="control (hatched)"
            )
        )
    fig.legend(handles=handles, title="student", fontsize=8, loc="outside right upper")


def _teacher_line(ax: Any, value: float, label: str) -> None:
    ax.axhline(value, color="0.2", linestyle="--", linewidth=1)
    ax.text(1.0, value, f" {label}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)


def _grouped_bars(
    ax: Any,
    stats: list[dict[str, Any]],
    students: list[str],
    key: str,
    scale: float,
    seed_values: dict[tuple[str, str], list[float]] | None = None,
) -> None:
    """Bars of stats[key] per arm (methods, a gap, then hatched controls under a 'controls'
    label), one bar per student; std error bars and seed dots when `seed_values` is given."""
    methods, controls = _ordered_arms(stats)
    pos = _arm_positions(methods, controls)
    width = 0.8 / len(students)
    for s in stats:
        j = students.index(s["student"])
        colour = STUDENT_COLOURS[j % len(STUDENT_COLOURS)]
        x = pos[s["arm"]] + (j - (len(students) - 1) / 2) * width
        control = s["group"] == "control"
        error = None if seed_values is None else scale * s["std"]
        ax.bar(x, scale * s[key], width * 0.92, yerr=error, capsize=3, linewidth=1.2,
               color="white" if control else colour, edgecolor=colour,
               hatch=CONTROL_HATCH if control else None)  # fmt: skip
        if seed_values is not None:
            dots = [scale * v for v in seed_values[(s["student"], s["arm"])]]
            ax.plot([x] * len(dots), dots, "k.", markersize=4, zorder=3)
    ax.set_xticks(list(pos.values()), list(pos.keys()), rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)
    if controls:
        if methods:
            ax.axvline(pos[controls[0]] - 1.0, color="0.4", linestyle=":", linewidth=1)
        centre = (pos[controls[0]] + pos[controls[-1]]) / 2
        ax.text(centre, 1.01, "controls (not methods)", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=9, style="italic", color="0.3")  # fmt: skip


def plot_scores(
    summary: list[dict[str, Any]],
    seed_scores: dict[tuple[str, str], list[float]],
    teacher: dict[str, Any] | None,
    metric: str,
    path: Path,
) -> Path:
    """Bars of mean test score per loss arm and student, std error bars, seeds as dots."""
    students = _students(summary)
    n_arms = len({s["arm"] for s in summary}) + 1
    size = (max(7.5, 1.1 * n_arms * max(1, len(students) / 2) + 3.5), 4.6)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    _grouped_bars(ax, summary, students, "mean", 100.0, seed_scores)
    values = [s["mean"] - s["std"] for s in summary]
    values += [v for scores in seed_scores.values() for v in scores]
    if teacher is not None and teacher.get("score") is not None:
        _teacher_line(ax, 100 * teacher["score"], f"teacher {100 * teacher['score']:.1f}")
        values.append(teacher["score"])
    # Bars start at zero unless every score is high: then the axis starts 5-15 points below.
    lowest = 100 * min(values)
    floor = max(0.0, 10 * math.floor((lowest - 5) / 10))
    ax.set_ylim(bottom=floor)
    note = f", axis from {floor:g}" if floor > 0 else ""
    ax.set_ylabel(f"test {metric} (%{note})")
    ax.set_xlabel("loss arm (bars: mean over seeds, error bars: std, dots: seeds)")
    _bar_legend(fig, students, any(s["group"] == "control" for s in summary))
    return _save(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by another that is at least as cheap (x) and at least as good (y)."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def plot_pareto(
    points: list[dict[str, Any]],
    teacher: dict[str, Any] | None,
    metric: str,
    x_label: str,
    path: Path,
    spread: bool = False,
) -> Path:
    """Score against cost (log x) per student x arm with the Pareto front of methods and teacher.

    `points`: dicts with student, arm, group, x, mean, std. `spread` shifts the arms of one
    student sideways a little when they share one x (MACs), so that they stay legible.
    """
    students = list(dict.fromkeys(p["student"] for p in points))
    arms = list(dict.fromkeys(p["arm"] for p in points))
    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    xs_all = []
    for p in points:
        i, j = arms.index(p["arm"]), students.index(p["student"])
        x = p["x"] * (1.0 + 0.04 * (i - (len(arms) - 1) / 2)) if spread else p["x"]
        colour = ARM_COLOURS[i % len(ARM_COLOURS)]
        control = p["group"] == "control"
        xs_all.append(x)
        ax.errorbar(
            x,
            100 * p["mean"],
            yerr=100 * p["std"],
            fmt=MARKERS[j % len(MARKERS)],
            color=colour,
            markerfacecolor="white" if control else colour,
            markersize=7,
            capsize=2,
            linewidth=1,
        )
    front_points = [(p["x"], 100 * p["mean"]) for p in points if p["group"] != "control"]
    if teacher is not None and teacher.get("x") is not None and teacher.get("score") is not None:
        tx, ty = teacher["x"], 100 * teacher["score"]
        ax.plot(tx, ty, marker="*", color="gold", markeredgecolor="k", markersize=16, zorder=4)
        ax.annotate("teacher", (tx, ty), textcoords="offset points", xytext=(8, -4), fontsize=9)
        front_points.append((tx, ty))
        xs_all.append(tx)
    front = pareto_front(front_points)
    if len(front) > 1:
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where="post", color="0.5", linestyle="--", linewidth=1, zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(min(xs_all) / 1.6, max(xs_all) * 1.6)
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_tick))
    ax.set_xlabel(f"{x_label} (log scale)")
    ax.set_ylabel(f"test {metric} (%)")
    ax.grid(alpha=0.3, which="both")

    handles = _pareto_legend(students, arms, any(p["group"] == "control" for p in points))
    fig.legend(handles=handles, fontsize=8, loc="outside right upper")
    return _save(fig, path)


def _pareto_legend(students: list[str], arms: list[str], with_controls: bool) -> list[Line2D]:
    """Legend handles of the Pareto plot: a marker per student, a colour per arm."""

    def key(label: str, **style: Any) -> Line2D:
        return Line2D([], [], label=label, **style)

    handles = [
        key(s, marker=MARKERS[j % len(MARKERS)], color="0.3", linestyle="")
        for j, s in enumerate(students)
    ]
    handles += [
        key(a, marker="s", color=ARM_COLOURS[i % len(ARM_COLOURS)], linestyle="")
        for i, a in enumerate(arms)
    ]
    if with_controls:
        handles.append(
            key("control (hollow)", marker="o", color="0.3", markerfacecolor="white", linestyle="")
        )
    handles.append(key("Pareto front (methods, teacher)", color="0.5", linestyle="--"))
    return handles


def clip_title(samples: dict[str, np.ndarray], k: int) -> str:
    """True label(s) and prediction of clip k, in lines of at most TITLE_CHARS characters."""
    names = [str(c) for c in samples["class_names"]]
    label, pred = samples["labels"][k], int(samples["predictions"][k])
    if np.ndim(label) == 0:
        mark = "correct" if int(label) == pred else "wrong"
        true, predicted = f"true: {names[int(label)]}", f"predicted: {names[pred]} ({mark})"
    else:
        listed = ", ".join(names[i] for i in np.flatnonzero(np.asarray(label) > 0.5))
        true, predicted = f"true: {listed or 'none'}", f"top prediction: {names[pred]}"
    line = f"{true} | {predicted}"
    if len(line) <= TITLE_CHARS:
        return line
    return "\n".join([textwrap.fill(true, TITLE_CHARS), textwrap.fill(predicted, TITLE_CHARS)])


def _envelope(wave: np.ndarray, seconds: float, bins: int = 1500) -> tuple[np.ndarray, ...]:
    """(time, min, max) of the waveform over up to `bins` slices covering the whole clip."""
    if len(wave) <= 2 * bins:
        t = (np.arange(len(wave)) + 0.5) * seconds / max(len(wave), 1)
        return t, wave, wave
    edges = np.linspace(0, len(wave), bins + 1).astype(int)
    t = (edges[:-1] + edges[1:]) / 2 * seconds / len(wave)
    return t, np.minimum.reduceat(wave, edges[:-1]), np.maximum.reduceat(wave, edges[:-1])


def pick_clips(spans: np.ndarray, n: int) -> list[int]:
    """Indices of up to `n` clips, those with a true span first."""
    has_span = [k for k in range(len(spans)) if not np.isnan(spans[k, :, 0]).all()]
    rest = [k for k in range(len(spans)) if k not in has_span]
    return (has_span + rest)[:n]


def plot_attention(samples: dict[str, np.ndarray], heading: str, path: Path, n: int = 3) -> Path:
    """Waveform (light) over a_T and a_S as densities on one time axis, true spans shaded."""
    seconds = float(samples["clip_seconds"])
    clips = pick_clips(samples["spans"], n)
    fig = Figure(figsize=(4.6 * len(clips) + 0.6, 4.6))
    curves = [
        (key, label, style)
        for key, label, style in (
            ("teacher_attention", "teacher $a_T$", dict(color="0.15", linestyle="--")),
            ("student_attention", "student $a_S$", dict(color="#1f77b4")),
        )
        if key in samples
    ]
    grid = fig.add_gridspec(2, len(clips), height_ratios=[1, 2.6], hspace=0.08)
    titles = [clip_title(samples, k) for k in clips]
    title_lines = max((t.count("\n") + 1 for t in titles), default=1)
    for c, k in enumerate(clips):
        top = fig.add_subplot(grid[0, c])
        bottom = fig.add_subplot(grid[1, c], sharex=top)
        t, lo, hi = _envelope(samples["waveform"][k].astype(np.float32), seconds)
        top.fill_between(t, lo, hi, color="0.75", linewidth=0)
        top.set_yticks([])
        top.tick_params(labelbottom=False)
        top.set_title(titles[c], fontsize=9)
        for onset, offset in samples["spans"][k]:
            if not math.isnan(onset):
                for ax in (top, bottom):
                    ax.axvspan(onset, offset, color=SPAN_COLOUR, alpha=0.25, linewidth=0)
        for key, label, style in curves:
            a = samples[key][k].astype(np.float64)
            centres = (np.arange(len(a)) + 0.5) * seconds / len(a)
            bottom.plot(centres, a * len(a) / seconds, label=label, linewidth=1.4, **style)
        bottom.set_xlim(0, seconds)
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel("time (s)")
        if c == 0:
            bottom.set_ylabel("attention density (1/s)")
    handles = [Patch(color=SPAN_COLOUR, alpha=0.25, label="true span")]
    handles += [Line2D([], [], label=label, **style) for _, label, style in curves]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(heading, fontsize=10, x=0.01, ha="left")
    top_edge = 0.82 - 0.04 * (title_lines - 1)
    fig.subplots_adjust(left=0.06, right=0.99, top=top_edge, bottom=0.12, wspace=0.18)
    return _save(fig, path)


def plot_localisation(
    stats: list[dict[str, Any]], teacher: dict[str, Any] | None, path: Path
) -> Path | None:
    """Bars per arm of the student head's argmax-in-span fraction and its mean entropy.

    `stats`: dicts with student, arm, group, in_span, entropy (None when not measured).
    Returns None when no arm has either value.
    """
    panels = [
        ("in_span", "argmax inside true span (%)", 100.0),
        ("entropy", "mean attention entropy (nats)", 1.0),
    ]
    panels = [p for p in panels if any(s[p[0]] is not None for s in stats)]
    if not panels:
        return None
    students = _students(stats)
    fig = Figure(figsize=(5.5 * len(panels) + 1.5, 4.4), layout="constrained")
    for i, (key, label, scale) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        _grouped_bars(ax, [s for s in stats if s[key] is not None], students, key, scale)
        if teacher is not None and teacher.get(key) is not None:
            _teacher_line(ax, scale * teacher[key], "teacher $a_T$")
        ax.set_ylabel(label)
    _bar_legend(fig, students, any(s["group"] == "control" for s in stats))
    return _save(fig, path)


def plot_det_arms(curves: dict[str, list[dict[str, Any]]], path: Path, target: float = 0.5) -> Path:
    """DET curves (pooled over keywords) per loss arm, one panel per student: FRR (%) against
    false accepts per hour (log); one line per run, coloured by arm. Points with no false accept
    sit at half the resolution of their run (0.5 FA over its negative hours); the dotted line
    marks `target` FA/h. `curves[student]`: {arm, seed, fa_per_hour, frr, resolution}."""
    students = list(curves)
    fig = Figure(figsize=(5.2 * len(students) + 1.6, 4.2), layout="constrained")
    axes = fig.subplots(1, len(students), sharey=True, squeeze=False)[0]
    arms = list(dict.fromkeys(c["arm"] for runs in curves.values() for c in runs))
    for ax, student in zip(axes, students):
        for c in curves[student]:
            colour = ARM_COLOURS[arms.index(c["arm"]) % len(ARM_COLOURS)]
            floor = 0.5 * c["resolution"]
            pts = [(max(x, floor), 100 * y) for x, y in zip(c["fa_per_hour"], c["frr"])
                   if y is not None]  # fmt: skip
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, color=colour, lw=1.2, alpha=0.85)
        ax.axvline(target, color="0.3", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(student, fontsize=10)
        ax.set_xlabel("false accepts per hour (log)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("false reject rate (%)")
    axes[0].set_ylim(-2, 104)
    handles = [Line2D([], [], color=ARM_COLOURS[i % len(ARM_COLOURS)], label=a)
               for i, a in enumerate(arms)]  # fmt: skip
    fig.legend(handles=handles, title="loss arm", fontsize=8, loc="outside right upper")
    return _save(fig, path)
