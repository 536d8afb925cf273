"""The HTML page of a `distill compare` report: one self-contained file, images as data URIs."""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

NUM = ' class="num"'
TEXT_COLUMNS = ("student", "arm", "group", "metric", "run_dir")
HOW_TO_READ = (
    "Methods are the distillation losses under test. Controls supervise the same student "
    "attention head with a target that is not the teacher's knowledge: <b>span</b> is the "
    "ground-truth localisation (a box over the true keyword/event span), <b>shuffled</b> is the "
    "teacher attention of another clip (the alignment destroyed), <b>uniform</b> is a flat "
    "target (the loss then only regularises the head). A temporal-KD gain that the span "
    "control also reaches is localisation rather than teacher knowledge; a gain that shuffled "
    "or uniform also reach comes from the extra head or loss, not from where the teacher looks. "
    "Scores are mean ± standard deviation over seeds (std 0 with one seed). "
    "“In span” is the fraction of test clips whose student-attention argmax falls inside a "
    "true span; entropy is in nats (lower is sharper; a flat distribution over T steps has "
    "log T)."
)


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:24px 32px;background:#fff}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.controls td{background:#fbf8ef}
.scroll{overflow-x:auto}table.runs{font-size:12px}table.runs td{white-space:nowrap}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:14px}.note{color:#555;font-style:italic}
"""


def _table(header: list[str], body: list[list[str]], css: str, numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = []
    for row in body:
        cells = "".join(
            f"<td{NUM if i in numeric else ''}>{html.escape(c)}</td>" for i, c in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    body_html = "".join(lines)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body_html}</tbody></table>'


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem.replace("_", " "))
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def run_cell(column: str, value: str, out_dir: Path) -> str:
    """A results.csv value for the per-run table: floats to 6 significant digits, run dirs
    relative to the compare folder."""
    if column == "run_dir" and value:
        try:
            return str(Path(value).resolve().relative_to(out_dir.resolve()))
        except ValueError:
            return value
    if column in TEXT_COLUMNS or not value:
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.6g}"


def render_html(
    *,
    title: str,
    description: str,
    metric: str,
    header: list[str],
    methods: list[list[str]],
    controls: list[list[str]],
    teacher_lines: list[str],
    figures: list[tuple[Path, str]],
    notes: list[str],
    rows: list[dict[str, str]],
    out_dir: Path,
) -> str:
    """The whole report page as one string: summary tables (methods, then controls), teacher
    lines, how to read it, figures as data URIs, notes on what is missing, every run."""
    numeric = set(range(2, len(header)))
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(description)}<br>'
        f"Generated {date} · {len(rows)} runs · metric: test {html.escape(metric)}</p>",
        "<h2>Summary</h2>",
        f"<p>Test {html.escape(metric)} in %, mean ± std over seeds.</p>",
    ]
    if methods:
        parts += ["<h3>Methods</h3>", _table(header, methods, "summary methods", numeric)]
    if controls:
        parts += [
            "<h3>Controls (localisation checks, not methods)</h3>",
            _table(header, controls, "summary controls", numeric),
        ]
    parts += [f"<p>{html.escape(line)}</p>" for line in teacher_lines]
    parts += ["<h2>How to read this</h2>", f"<p>{HOW_TO_READ}</p>", "<h2>Figures</h2>"]
    parts += [_img(path, caption) for path, caption in figures]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    columns = list(rows[0].keys())
    body = [[run_cell(c, r.get(c) or "", out_dir) for c in columns] for r in rows]
    header = [c.replace("_", " ") for c in columns]
    numeric = {i for i, c in enumerate(columns) if c not in TEXT_COLUMNS}
    parts += [
        "<h2>All runs</h2>",
        f"<p>Every row of results.csv (run dirs relative to {html.escape(str(out_dir))}).</p>",
        f'<div class="scroll">{_table(header, body, "runs", numeric)}</div>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><main>\n"
        + "\n".join(parts)
        + "\n</main></body></html>\n"
    )
