"""`distill attention`: sharpness and placement of the teacher's temporal attention."""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.files import write_json


def _attention(args: argparse.Namespace) -> int:
    from distill.analysis.teacher_attention import attention_table, markdown, parse_layers
    from distill.config import load_recipe

    cfg = load_recipe(args.recipe, args.overrides)
    try:
        temperatures = [float(t) for t in args.temperatures.split(",") if t.strip()]
    except ValueError:
        temperatures = []
    if not temperatures or any(t <= 0 for t in temperatures):
        raise SystemExit(
            f"distill attention: --temperatures needs numbers > 0, given {args.temperatures!r}"
        )
    layer_sets = [parse_layers(text) for text in (args.layers or ["all"])]
    rows = attention_table(cfg, args.split, temperatures, layer_sets, args.limit_batches)
    table = markdown(rows)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, rows)
        print(f"rows written to {out}")
    if args.plot:
        from distill.analysis.teacher_attention import attention_samples
        from distill.report.plots import plot_attention

        cfg.teacher.rollout_layers = layer_sets[0]
        samples = attention_samples(cfg, args.split)
        heading = f"teacher {cfg.teacher.path}: rolled-out attention on {args.split} clips"
        print(f"plot written to {plot_attention(samples, heading, Path(args.plot))}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `distill attention`."""
    p = subparsers.add_parser(
        "attention",
        help="entropy and in-span placement of the teacher's attention, with sharpening options",
    )
    p.add_argument("recipe", help="recipe name or path (its teacher and data are used)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.clip_seconds=4")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument(
        "--temperatures",
        default="1,0.5,0.25",
        help="comma-separated teacher temperatures (as losses.temporal_kd.teacher_temperature)",
    )
    p.add_argument(
        "--layers",
        action="append",
        help="rollout layers: 'all' or e.g. '2,3' or '-1'; repeat for several (default all)",
    )
    p.add_argument("--limit-batches", type=int, default=None, help="only the first N batches")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.add_argument(
        "--plot",
        default=None,
        help="also plot a_T (first --layers choice) over the waveform of 3 clips to this PNG",
    )
    p.set_defaults(func=_attention)
