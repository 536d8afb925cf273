"""The wake-word metric on a built stream set, and its files: JSON and the DET plot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distill.deploy.stream_eval import ScoredStream, evaluate_streams
from distill.deploy.streams import StreamSet
from distill.extras import require
from distill.files import atomic_path, write_json


def evaluate_stream_set(
    stream_set: StreamSet,
    score: Callable[[Path], tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    **options: Any,
) -> dict[str, Any]:
    """Score every stream of a built stream set (`score(wav path) -> (times, posteriors)`),
    evaluate them together (`options` as for `evaluate_streams`), and add the stream set's
    fingerprint and, at each target, the pooled false accepts per source (synthetic, real)."""
    scored = []
    for info in stream_set.streams:
        times, post = score(info.path)
        events = stream_set.events.get(info.name, [])
        scored.append(ScoredStream(info.name, info.seconds, times, post, events))
    result = evaluate_streams(scored, class_names, **options)
    source = {i.name: i.source for i in stream_set.streams}
    neg = {row["name"]: row["negative_seconds"] for row in result["streams"]}
    result["stream_set"] = {"root": str(stream_set.root), **stream_set.meta.get("fingerprint", {})}
    result["pooled_by_source"] = {
        target: by_group(at["pooled"]["false_accepts_by_stream"], neg, source)
        for target, at in result["at_fa_per_hour"].items()
    }
    return result


def by_group(fa: dict[str, int], neg: dict[str, float], group: dict[str, str]) -> dict:
    """False accepts and FA/h per group of streams (e.g. by source: synthetic, real), from the
    false accepts and negative seconds of each stream."""
    out = {}
    for g in sorted(set(group.values())):
        hours = sum(v for k, v in neg.items() if group[k] == g) / 3600
        n = sum(v for k, v in fa.items() if group[k] == g)
        rate = n / hours if hours else None
        out[g] = {"negative_hours": hours, "false_accepts": n, "fa_per_hour": rate}
    return out


def write_result(result: dict[str, Any], out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write `stream_eval.json` and the DET plot `det.png` into `out_dir`; their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "stream_eval.json", "png": out_dir / "det.png"}
    write_json(paths["json"], result)
    plot_det(result, paths["png"], title)
    return paths


def plot_det(result: dict[str, Any], path: Path, title: str = "") -> Path:
    """DET curve: FRR (%) against FA/h on a log axis, pooled (black) and per keyword, one point
    per swept threshold; points with no false accept sit on the dashed line at half the
    resolution (0.5 FA over the negative hours); dotted lines mark the target FA/h."""
    require("matplotlib", "report", "the DET plot of distill eval-stream")
    from matplotlib.figure import Figure

    floor = 0.5 * result["fa_per_hour_resolution"]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    curves = [("pooled", result["det"]["pooled"], 2.2, "black")]
    curves += [(k, c, 0.9, None) for k, c in result["det"]["per_keyword"].items()]
    for name, curve, width, colour in curves:
        # a keyword without positives has no FRR (None): nothing to draw for it
        pairs = zip(curve["fa_per_hour"], curve["frr"])
        pts = [(max(x, floor), 100 * y) for x, y in pairs if y is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=width, color=colour, marker=".", ms=3, label=name)
    for t in result["at_fa_per_hour"]:
        ax.axvline(float(t), color="grey", ls=":", lw=1)
        ax.text(float(t), 101, f"{t}/h", fontsize=7, ha="center", va="bottom", color="grey")
    ax.axvline(floor, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    hours = result["negative_hours"]
    ax.set_xlabel(f"false accepts per hour (log; dashed line: no false accept in {hours:.2f} h)")
    ax.set_ylabel("false reject rate (%)")
    ax.set_ylim(-2, 106)
    ax.set_title(title or f"DET over {sum(result['positives'].values())} keywords", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="center right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


__all__ = ["by_group", "evaluate_stream_set", "plot_det", "write_result"]
