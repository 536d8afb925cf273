"""`distill fit` (train a student; QAT after it when enabled) and `distill eval`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from distill.commands import add_recipe_arguments


def _fit(args: argparse.Namespace) -> int:
    from distill.config import load_recipe
    from distill.deploy.qat import fit_with_qat

    cfg = load_recipe(args.recipe, args.overrides)
    results = fit_with_qat(
        cfg,
        run_dir=args.run_dir,
        resume=args.resume,
        checkpoint_every_n_steps=args.checkpoint_every,
    )
    print(json.dumps(results.to_dict(), indent=2))
    return 0


def compact_json(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON indented by 2, with every list or object that fits in `width` columns on one line
    (a confusion-matrix row, a per-class entry)."""
    flat = json.dumps(value)
    if not isinstance(value, dict | list) or not value or len(flat) + indent <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k)}: {compact_json(v, indent + 2, width)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + compact_json(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def report_table(results: dict[str, Any]) -> str:
    """`distill eval --table`: the scalar metrics, a per-class table and (single-label) the
    confusion matrix as plain text."""
    report, split = results["report"], results["split"]
    lines = [f"{results['checkpoint']}: {split}, {report['clips']} clips, {report['task']}"]
    lines += [f"  {k:<28} {_cell(v)}" for k, v in results["metrics"].items()]
    rows = report["per_class"]
    columns = [c for c in rows[0] if c != "class"] if rows else []
    width = max([5, *(len(r["class"]) for r in rows)])
    lines += ["", f"{'#':>3} {'class':<{width}} " + " ".join(f"{c:>9}" for c in columns)]
    for i, row in enumerate(rows):
        cells = " ".join(f"{_cell(row[c]):>9}" for c in columns)
        lines.append(f"{i:>3} {row['class']:<{width}} {cells}")
    matrix = report.get("confusion_matrix")
    if matrix:
        counts = matrix["counts"]
        digits = max(3, *(len(str(v)) for r in counts for v in r))
        lines += ["", "confusion matrix (rows: true class #, columns: predicted class #)"]
        lines.append("    " + " ".join(f"{j:>{digits}}" for j in range(len(counts))))
        lines += [f"{i:>3} " + " ".join(f"{v:>{digits}}" for v in r) for i, r in enumerate(counts)]
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    from distill.pipeline.evaluate import evaluate_checkpoint

    results = evaluate_checkpoint(args.checkpoint, split=args.split, overrides=args.overrides)
    if args.evidence:
        from distill.analysis.evidence import checkpoint_evidence

        results["metrics"].update(checkpoint_evidence(args.checkpoint, split=args.split))
    print(report_table(results) if args.table else compact_json(results))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fit` and `eval`."""
    p = subparsers.add_parser("fit", help="train the recipe's student (with its KD losses)")
    add_recipe_arguments(p)
    p.add_argument("--run-dir", default=None, help="run directory (default runs/<name>/<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="also save last.ckpt every STEPS training steps (for resume mid-epoch)",
    )
    p.set_defaults(func=_fit)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint on a split")
    p.add_argument("checkpoint", help="a .ckpt written by `distill fit`")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument(
        "--evidence",
        action="store_true",
        help="also report where the student's class evidence peaks in time (GAP + linear "
        "students such as TC-ResNet; needs spans in the data)",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="print the metrics, per-class scores and confusion matrix as text tables instead "
        "of JSON (docs/metrics.md says what each metric is)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides of the stored recipe (e.g. data.root=/other/copy)",
    )
    p.set_defaults(func=_eval)
