"""`distill compare`: students x loss arms x seeds, with a results table and a report."""

from __future__ import annotations

import argparse
from pathlib import Path


def _compare(args: argparse.Namespace) -> int:
    from distill.config import load_recipe
    from distill.experiments.compare import parse_list, run_grid
    from distill.report.build import write_report

    cfg = load_recipe(args.recipe, args.overrides)
    out = Path(args.out or Path(cfg.run_dir) / "compare" / cfg.name)
    csv_path = run_grid(
        cfg,
        parse_list(args.students, "students"),
        parse_list(args.losses, "losses"),
        args.seeds,
        out,
        collect_only=args.collect_only,
        jobs=args.jobs,
        stream_eval_hours=args.stream_eval,
    )
    report = write_report(cfg, out, csv_path)
    print((out / "summary.md").read_text())
    print(f"results: {csv_path}")
    print(f"report:  {report}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `compare`."""
    p = subparsers.add_parser(
        "compare", help="run a grid of students x loss arms x seeds and summarise it"
    )
    p.add_argument("recipe", help="recipe name or path (its teacher, data and trainer are used)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=3")
    p.add_argument(
        "--students", required=True, help="comma-separated students, e.g. tc_resnet8,crnn"
    )
    p.add_argument(
        "--losses",
        default="none,logit,temporal,logit+temporal",
        help="comma-separated loss arms: none, logit, temporal, hint, at, joined with '+'; "
        "controls span, shuffled, uniform; '@W' sets a term's weight, e.g. "
        "none,temporal@0.1,temporal@0.25 sweeps lambda (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default: %(default)s)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained side by side, each in its own process with an equal share of the "
        "CPU threads (default: %(default)s)",
    )
    p.add_argument("--out", default=None, help="output folder (default <run_dir>/compare/<name>)")
    p.add_argument(
        "--collect-only",
        action="store_true",
        help="train nothing: tabulate the finished runs of the grid and list the missing ones "
        "(after splitting a grid over several processes)",
    )
    p.add_argument(
        "--stream-eval",
        nargs="?",
        type=float,
        const=1.0,
        default=None,
        metavar="HOURS",
        help="also run the streaming metric (FRR at 0.1/0.5/1 false accepts per hour) on every "
        "finished run over HOURS of negative audio (default 1; write --stream-eval=HOURS)",
    )
    p.set_defaults(func=_compare)
