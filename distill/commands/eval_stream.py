"""`distill eval-stream MODEL`: false rejects at a fixed number of false accepts per hour."""

from __future__ import annotations

import argparse

EVAL_STREAM_HELP = """\
The wake-word metric of a trained model: build (or reuse) long test streams from the data of
its recipe (negative audio: the test split's noise with its non-keyword words; positives: the
test split's keywords at known times; plus a folder of real negative audio with --negatives),
run the streaming detector over them, sweep the threshold into a DET curve and print the false
reject rate at 0.1, 0.5 and 1 false accepts per hour, per keyword and averaged, and the
latency. Writes stream_eval.json and det.png (default: <run>/stream_eval/).
See docs/streaming.md."""


def _eval_stream(args: argparse.Namespace) -> int:
    import torch

    from distill.deploy.stream_run import (
        EvalStreamOptions,
        default_out_dir,
        eval_stream_model,
        format_summary,
        model_recipe,
    )

    torch.set_num_threads(args.threads)
    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    cfg = model_recipe(args.model, args.recipe, overrides)
    options = EvalStreamOptions(
        hours=args.hours, seed=args.seed, negatives=args.negatives,
        negatives_hours=args.negatives_hours, positives=args.positives,
        streams_dir=args.streams, mode=args.mode, hop_seconds=args.hop,
        window_seconds=args.window, smooth_hops=args.smooth,
        refractory_seconds=args.refractory, tolerance=args.tolerance, reuse=not args.no_reuse,
    )  # fmt: skip
    out = args.out or default_out_dir(args.model)
    result = eval_stream_model(args.model, cfg, out, options)
    print(f"distill eval-stream: {args.model}")
    print(format_summary(result))
    print(f"result: {out}/stream_eval.json, DET plot: {out}/det.png")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `distill eval-stream`."""
    p = subparsers.add_parser(
        "eval-stream",
        help="false rejects at 0.1 / 0.5 / 1 false accepts per hour over long test streams",
        description=EVAL_STREAM_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="run directory, .ckpt, saved student, or exported .onnx")
    p.add_argument(
        "overrides", nargs="*", help="dotted overrides of the recipe, e.g. data.snr_db=[0,10]"
    )
    p.add_argument("--recipe", default=None, help="recipe (default: the run's config.yaml)")
    p.add_argument("--data", default=None, help="keyword bank to build the streams from")
    p.add_argument("--hours", type=float, default=1.0, help="hours of synthetic negatives (1)")
    p.add_argument("--seed", type=int, default=None, help="stream seed (default: data.seed)")
    p.add_argument("--negatives", default=None, help="folder of real negative audio (any depth)")
    p.add_argument(
        "--negatives-hours", type=float, default=None, help="cap on the real negatives (all)"
    )
    p.add_argument(
        "--positives", type=int, default=0, help="keyword placements (0: each test clip once)"
    )
    p.add_argument("--streams", default=None, help="stream folder (default: under run_dir)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/stream_eval)")
    p.add_argument("--mode", default="auto", choices=["auto", "sliding", "stateful"])
    p.add_argument("--hop", type=float, default=None, help="seconds between posteriors (0.1)")
    p.add_argument("--window", type=float, default=None, help="window (default: training clip)")
    p.add_argument("--smooth", type=int, default=3, help="moving average over N hops (3)")
    p.add_argument("--refractory", type=float, default=1.0, help="refractory seconds (1.0)")
    p.add_argument(
        "--tolerance", type=float, default=0.5, help="seconds after a keyword's end a hit may start"
    )
    p.add_argument("--no-reuse", action="store_true", help="score again even if unchanged")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=_eval_stream)
