"""The report of `distill compare`: summary.md, PNG plots and one self-contained report.html."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from distill.core.losses.arms import Arm
from distill.errors import BadValueError
from distill.files import write_text
from distill.pipeline.samples import SAMPLES_FILE
from distill.report import plots
from distill.report.confusion import confusion_figures, confusion_markdown
from distill.report.html import render_html
from distill.report.results import MISSING_CELL, markdown_table, read_rows, summarise
from distill.report.stream_table import stream_table_markdown

REQUIRED_COLUMNS = ("student", "arm", "group", "seed", "metric", "test_score", "params", "macs")
SAMPLE_KEYS = ("waveform", "spans", "labels", "predictions", "class_names", "clip_seconds")
LATENCY_COLUMN = "latency_ms_b1"
SUMMARY_HEADER = [
    "student",
    "loss",
    "test score (%)",
    "seeds",
    "student attention in span",
    "student attention entropy (nats)",
]
MISSING = MISSING_CELL
FRR_COLUMN = "frr_at_0.5_fa_h"  # the streaming metric in the summary (compare --stream-eval)
FRR_HEADER = "FRR at 0.5 FA/h (%)"
STREAM_RESULT = Path("stream_eval") / "stream_eval.json"


# ---------------------------------------------------------------- inputs
def load_results(csv_path: Path) -> list[dict[str, str]]:
    """Rows of results.csv, checked for the columns and values the report needs."""
    rows = read_rows(csv_path)
    if not rows:
        raise BadValueError(f"{csv_path}: no runs in the results file")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise BadValueError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    for i, row in enumerate(rows, start=2):
        try:
            float(row["test_score"])
        except ValueError:
            raise BadValueError(
                f"{csv_path} line {i}: test_score {row['test_score']!r} of "
                f"{row['student']}/{row['arm']} seed {row['seed']} is not a number"
            ) from None
        if row["group"] not in ("method", "control"):
            raise BadValueError(
                f"{csv_path} line {i}: group {row['group']!r}, expected method or control"
            )
    return rows


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def teacher_results(cfg: DictConfig, metric: str) -> tuple[dict[str, Any] | None, str]:
    """(teacher facts or None, a sentence on where they came from or why they are missing)."""
    if cfg.teacher.kind == "none" or not cfg.teacher.path:
        return None, "No teacher in this recipe (teacher.kind none)."
    path = Path(cfg.teacher.path) / "results.json"
    if not path.is_file():
        return None, f"Teacher results not found ({path}); the teacher is not shown."
    try:
        data = json.loads(path.read_text())
        test = data["test"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise BadValueError(
            f"{path}: not a teacher results file with a 'test' section ({err})"
        ) from err
    teacher = {
        "score": _number(test.get(f"test/{metric}")),
        "in_span": _number(test.get("test/teacher_attention_in_span")),
        "entropy": _number(test.get("test/teacher_attention_entropy")),
        "params": _number(data.get("params")),
        "macs": _number(data.get("macs")),
        "latency": _number(data.get(LATENCY_COLUMN)),
    }
    return teacher, f"Teacher results: {path}."


def load_samples(path: Path) -> dict[str, np.ndarray] | None:
    """Arrays of an attention_samples.npz, or None when the file does not exist."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    missing = [k for k in SAMPLE_KEYS if k not in arrays]
    if missing:
        raise BadValueError(f"{path}: missing array(s) {', '.join(missing)}")
    if len(arrays["waveform"]) == 0:
        raise BadValueError(f"{path}: holds no clips")
    if "student_attention" not in arrays and "teacher_attention" not in arrays:
        raise BadValueError(f"{path}: holds neither student_attention nor teacher_attention")
    return arrays


def run_dir_of(row: dict[str, str], out_dir: Path) -> Path:
    """The run directory of a CSV row: its run_dir when it exists, else the grid's layout."""
    given = Path(row.get("run_dir") or "")
    if row.get("run_dir") and given.is_dir():
        return given
    return out_dir / row["student"] / row["arm"] / f"seed{row['seed']}"


def attention_run(rows: list[dict[str, str]], student: str, out_dir: Path) -> Any:
    """(row, samples) of the student's best-scoring run with samples, temporal arms preferred."""
    found = []
    for row in rows:
        if row["student"] != student:
            continue
        samples = load_samples(run_dir_of(row, out_dir) / SAMPLES_FILE)
        if samples is not None:
            tokens = Arm(row["arm"]).tokens
            rank = (tokens == ["temporal"], "temporal" in tokens, float(row["test_score"]))
            found.append((rank, row, samples))
    if not found:
        return None, None
    _, row, samples = max(found, key=lambda f: f[0])
    return row, samples


# ---------------------------------------------------------------- summary
def _mean_of(items: list[dict[str, str]], key: str) -> float | None:
    values = [float(r[key]) for r in items if r.get(key) not in (None, "")]
    return statistics.fmean(values) if values else None


def summary_stats(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """summarise() per student x arm, plus mean attention entropy and mean cost columns."""
    summary = summarise(rows)
    for s in summary:
        items = [r for r in rows if r["student"] == s["student"] and r["arm"] == s["arm"]]
        s["entropy"] = _mean_of(items, "student_attention_entropy")
        s["macs"] = _mean_of(items, "macs")
        s["latency"] = _mean_of(items, LATENCY_COLUMN)
        frr = [float(r[FRR_COLUMN]) for r in items if r.get(FRR_COLUMN) not in (None, "")]
        s["frr"] = statistics.fmean(frr) if frr else None
        s["frr_std"] = statistics.stdev(frr) if len(frr) > 1 else 0.0
    return summary


def summary_header(summary: list[dict[str, Any]]) -> list[str]:
    """The summary table's columns: FRR at 0.5 FA/h added when the grid has the streaming
    metric."""
    streaming = any(s.get("frr") is not None for s in summary)
    return SUMMARY_HEADER + ([FRR_HEADER] if streaming else [])


def score_cell(s: dict[str, Any]) -> str:
    """A summary entry's "mean ± std" in percent."""
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def summary_cells(summary: list[dict[str, Any]]) -> tuple[list[list[str]], list[list[str]]]:
    """Formatted cells of the summary table: (method rows, control rows)."""

    streaming = len(summary_header(summary)) > len(SUMMARY_HEADER)

    def cells(s: dict[str, Any]) -> list[str]:
        row = [
            s["student"],
            s["arm"],
            score_cell(s),
            str(s["n"]),
            MISSING if s["in_span"] is None else f"{100 * s['in_span']:.1f}%",
            MISSING if s["entropy"] is None else f"{s['entropy']:.3f}",
        ]
        if streaming:
            frr = s.get("frr")
            row.append(MISSING if frr is None else f"{100 * frr:.1f} ± {100 * s['frr_std']:.1f}")
        return row

    methods = [cells(s) for s in summary if s["group"] == "method"]
    controls = [cells(s) for s in summary if s["group"] == "control"]
    return methods, controls


def teacher_line(teacher: dict[str, Any] | None, metric: str) -> str | None:
    """One sentence with the teacher's score, attention-in-span and entropy, when known."""
    if teacher is None:
        return None
    parts = []
    if teacher["score"] is not None:
        parts.append(f"test {metric} {100 * teacher['score']:.2f}%")
    if teacher["in_span"] is not None:
        parts.append(f"attention argmax in span {100 * teacher['in_span']:.1f}%")
    if teacher["entropy"] is not None:
        parts.append(f"attention entropy {teacher['entropy']:.3f} nats")
    if teacher["params"] is not None:
        parts.append(f"{teacher['params']:,.0f} params")
    if teacher["macs"] is not None:
        parts.append(f"{teacher['macs']:,.0f} MACs")
    return ("Teacher: " + ", ".join(parts) + ".") if parts else None


def arm_matrix(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The methods as one row per student and one column per arm (the paper's table layout):
    (header, rows) of "mean ± std" cells in percent, "–" where a student lacks an arm."""
    methods = [s for s in summary if s["group"] == "method"]
    arms = list(dict.fromkeys(s["arm"] for s in methods))
    cell = {(s["student"], s["arm"]): score_cell(s) for s in methods}
    rows = [
        [student] + [cell.get((student, arm), MISSING) for arm in arms]
        for student in dict.fromkeys(s["student"] for s in methods)
    ]
    return ["student", *arms], rows


def summary_markdown(summary: list[dict[str, Any]], teacher: dict[str, Any] | None) -> str:
    """summary.md: a methods table, a student x arm table of the methods, a controls table, and
    the teacher line."""
    methods, controls = summary_cells(summary)
    metric = summary[0]["metric"]
    out = [f"Test {metric}, mean ± std over seeds.", ""]
    header, matrix = arm_matrix(summary)
    head_row = summary_header(summary)
    sections = [
        ("Methods", head_row, methods),
        (
            "Methods per student (one column per loss arm)",
            header,
            matrix if len(header) > 2 else [],
        ),
        ("Controls (localisation checks, not methods)", head_row, controls),
    ]
    for title, head, body in sections:
        if not body:
            continue
        out += [f"### {title}", "", *markdown_table(head, body), ""]
    line = teacher_line(teacher, metric)
    if line:
        out += [line, ""]
    return "\n".join(out)


# ---------------------------------------------------------------- plots
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


CAPTIONS = {
    "scores": "Test {metric} per loss arm and student; hatched bars are controls, dots are seeds.",
    "macs": "Test {metric} against MACs per clip, Pareto front dashed. The arms of one student "
    "share its MACs; they are spread sideways a little to stay legible.",
    "latency": "Test {metric} against measured latency (batch 1, 1 thread, onnxruntime float).",
    "attention": "Teacher a_T and student a_S over time on test clips ({heading}); shaded: true "
    "span(s). Densities are per second so that different numbers of time steps compare.",
    "localisation": "Student attention head per arm: share of test clips whose argmax lies inside "
    "the true span, and its mean entropy; dashed: the teacher's a_T.",
}


def make_plots(
    rows: list[dict[str, str]],
    summary: list[dict[str, Any]],
    teacher: dict[str, Any] | None,
    out_dir: Path,
    curves: dict[str, list[dict[str, Any]]],
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Write the PNGs (`curves`: det_curves of the rows); return (path, caption) per figure and
    notes on figures left out."""
    metric = summary[0]["metric"]
    figures: list[tuple[Path, str]] = []
    notes: list[str] = []
    seed_scores = {
        (s["student"], s["arm"]): [
            float(r["test_score"])
            for r in rows
            if r["student"] == s["student"] and r["arm"] == s["arm"]
        ]
        for s in summary
    }
    path = plots.plot_scores(summary, seed_scores, teacher, metric, out_dir / "scores.png")
    figures.append((path, CAPTIONS["scores"].format(metric=metric)))

    for key, label, spread in (
        ("macs", "MACs per clip", True),
        ("latency", "latency, ms (batch 1, 1 thread)", False),
    ):
        points = [dict(s, x=s[key]) for s in summary if s[key]]
        if not points:
            what = "MACs were not recorded" if key == "macs" else "Latency was not measured"
            notes.append(f"{what} for these runs, so there is no score-vs-{key} plot.")
            continue
        tch = None if teacher is None else dict(teacher, x=teacher[key])
        path = out_dir / f"score_vs_{key}.png"
        plots.plot_pareto(points, tch, metric, label, path, spread=spread)
        caption = CAPTIONS[key].format(metric=metric)
        if teacher is not None and tch["x"] is None:
            caption += f" The teacher's {key} is not known, so it is not shown."
        figures.append((path, caption))

    for student in dict.fromkeys(r["student"] for r in rows):
        row, samples = attention_run(rows, student, out_dir)
        if samples is None:
            notes.append(f"No {SAMPLES_FILE} in the runs of {student}: no attention plot.")
            continue
        heading = f"{student}, arm {row['arm']}, seed {row['seed']} (best seed with samples)"
        path = out_dir / f"attention_{_safe(student)}.png"
        plots.plot_attention(samples, heading, path)
        figures.append((path, CAPTIONS["attention"].format(heading=heading)))

    path = plots.plot_localisation(summary, teacher, out_dir / "localisation.png")
    if path is not None:
        figures.append((path, CAPTIONS["localisation"]))
    else:
        notes.append("No run recorded student attention statistics: no localisation plot.")
    det = det_figure(curves, out_dir)
    if det is not None:
        figures.append(det)
    return figures, notes


def det_curves(rows: list[dict[str, str]], out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Pooled DET curves of the runs that have a streaming result, per student."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        path = run_dir_of(row, out_dir) / STREAM_RESULT
        if row.get(FRR_COLUMN) in (None, "") or not path.is_file():
            continue
        result = json.loads(path.read_text())
        curves.setdefault(row["student"], []).append({
            "arm": row["arm"], "seed": row["seed"], **result["det"]["pooled"],
            "resolution": result["fa_per_hour_resolution"],
            "negative_hours": result["negative_hours"],
        })  # fmt: skip
    return curves


def det_figure(curves: dict[str, list[dict[str, Any]]], out_dir: Path) -> tuple[Path, str] | None:
    """The DET curves per arm (compare --stream-eval; `det_curves`), when the runs have them."""
    if not curves:
        return None
    hours = min(c["negative_hours"] for runs in curves.values() for c in runs)
    path = plots.plot_det_arms(curves, out_dir / "det_arms.png")
    caption = (
        "Streaming metric: false reject rate against false accepts per hour as the threshold "
        "moves (pooled over keywords, one threshold for all), one line per run, coloured by "
        f"loss arm; at least {hours:.2f} h of negative audio per run (distill eval-stream). "
        "Lower and further left is better; the dotted line marks 0.5 FA/h."
    )
    return path, caption


def write_report(
    cfg: DictConfig,
    out_dir: str | Path,
    csv_path: str | Path,
    extra_figures: list[tuple[Path, str]] | None = None,
    extra_markdown: str = "",
) -> Path:
    """Write summary.md, the PNG plots and report.html into `out_dir`; return the HTML path.
    `extra_figures` (PNG, caption) and `extra_markdown` (appended to summary.md) add what the
    caller measured besides the grid (the demo's detection plot and streaming metric)."""
    out_dir, csv_path = Path(out_dir), Path(csv_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = load_results(csv_path)
    metrics = sorted({r["metric"] for r in rows})
    if len(metrics) != 1:
        raise BadValueError(f"{csv_path}: runs mix metrics {metrics}; one report needs one metric")
    summary = summary_stats(rows)
    teacher, teacher_note = teacher_results(cfg, metrics[0])
    confusion, confusion_notes = confusion_figures(
        rows, [run_dir_of(r, out_dir) for r in rows], out_dir
    )
    markdown = summary_markdown(summary, teacher)
    curves = det_curves(rows, out_dir)
    streams = stream_table_markdown(rows, curves)
    for part in (streams, confusion_markdown(confusion), extra_markdown):
        markdown += f"\n{part}\n" if part else ""
    write_text(out_dir / "summary.md", markdown)
    figures, notes = make_plots(rows, summary, teacher, out_dir, curves)
    figures += confusion + list(extra_figures or [])
    notes += confusion_notes
    methods, controls = summary_cells(summary)
    page = render_html(
        title=f"distill compare: {cfg.name}",
        description=str(cfg.get("description") or ""),
        metric=metrics[0],
        header=summary_header(summary),
        methods=methods,
        controls=controls,
        teacher_lines=[line for line in (teacher_line(teacher, metrics[0]), teacher_note) if line],
        figures=figures,
        notes=notes,
        rows=rows,
        out_dir=out_dir,
    )
    return write_text(out_dir / "report.html", page)
