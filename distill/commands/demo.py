"""`distill demo`: the main job on the embedded default (synthetic noisy keywords)."""

from __future__ import annotations

import argparse


def _demo(args: argparse.Namespace) -> int:
    from distill.experiments.compare import parse_list
    from distill.experiments.demo import DemoOptions, run_demo

    options = DemoOptions(
        per_word=args.per_word,
        per_unknown=args.per_unknown,
        speakers=args.speakers,
        students=tuple(parse_list(args.students, "students")),
        losses=tuple(parse_list(args.losses, "losses")),
        seeds=args.seeds,
        jobs=args.jobs,
        workers=args.workers,
    )
    run_demo(options, args.overrides)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    from distill.experiments.demo import DemoOptions

    d = DemoOptions()
    p = subparsers.add_parser(
        "demo",
        help="synthesise keywords, train a teacher, distil a CNN and an RNN student, report",
    )
    p.add_argument(
        "overrides", nargs="*", help="overrides for both demo recipes, e.g. trainer.max_epochs=30"
    )
    p.add_argument(
        "--per-word", type=int, default=d.per_word, help="clips per keyword (%(default)s)"
    )
    p.add_argument(
        "--per-unknown",
        type=int,
        default=d.per_unknown,
        help="clips per other word, the _unknown_ class (%(default)s)",
    )
    p.add_argument("--speakers", type=int, default=d.speakers, help="voices (%(default)s)")
    p.add_argument("--students", default=",".join(d.students), help="students (%(default)s)")
    p.add_argument("--losses", default=",".join(d.losses), help="loss arms (%(default)s)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="seeds per cell (%(default)s)")
    p.add_argument(
        "--jobs", type=int, default=d.jobs, help="student runs side by side (%(default)s)"
    )
    p.add_argument("--workers", type=int, default=None, help="data synthesis processes")
    p.set_defaults(func=_demo)
