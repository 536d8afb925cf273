"""A PNG of one file's detection: waveform, smoothed posteriors, thresholds and detections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.deploy.decisions import moving_average
from distill.extras import require
from distill.files import atomic_path

matplotlib = require("matplotlib", "report", "distill detect --plot")
from matplotlib.figure import Figure  # noqa: E402  (after the check that matplotlib is there)


def plot_detections(
    result: Any,
    thresholds: dict[str, float],
    smooth_hops: int,
    path: str | Path,
    truth: list[tuple[str, float, float]] | None = None,
) -> Path:
    """Write the plot of `result` (a `distill.deploy.detect.FileResult`, which imports this
    module) to `path` (PNG); one line and threshold per detected class;
    `truth` (class, onset, offset), when known, marked under the waveform."""
    post, env = result.posteriors, result.envelope
    fig = Figure(figsize=(12, 5.5))  # drawn with the Agg canvas, no pyplot state
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    if len(env.get("times", [])):
        top.fill_between(env["times"], env["low"], env["high"], color="0.35", linewidth=0)
    top.set_ylabel("waveform")
    top.set_title(f"{Path(result.path).name}: {len(result.detections)} detection(s)")
    smoothed = moving_average(post.scores, smooth_hops) if len(post.times) else post.scores
    colors = matplotlib.colormaps["tab10"]
    order = {name: i for i, name in enumerate(thresholds)}
    for name, threshold in thresholds.items():
        color = colors(order[name] % 10)
        column = post.class_names.index(name)
        bottom.plot(post.times, smoothed[:, column], color=color, linewidth=1.2, label=name)
        bottom.axhline(threshold, color=color, linestyle="--", linewidth=0.8)
    for det in result.detections:
        color = colors(order[det.label] % 10)
        for axis in (top, bottom):
            axis.axvspan(det.start, max(det.end, det.start + 1e-3), color=color, alpha=0.25)
        top.annotate(
            det.label,
            (det.start, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            va="top",
            color=color,
        )
    for label, onset, offset in truth or []:
        top.axvspan(onset, offset, ymax=0.08, color="black", alpha=0.6)
        top.annotate(label, (onset, 0.1), xycoords=("data", "axes fraction"), fontsize=7)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel(f"posterior (mean of {smooth_hops} hops)")
    bottom.set_xlabel("time (s): end of the audio heard at each hop")
    if thresholds:
        bottom.legend(loc="upper right", fontsize=8, ncol=min(5, len(thresholds)))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
