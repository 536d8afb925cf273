"""`distill fit` (train a student; QAT after it when enabled) and `distill eval`."""

from __future__ import annotations

import argparse
import json

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


def _eval(args: argparse.Namespace) -> int:
    from distill.pipeline.evaluate import evaluate_checkpoint

    results = evaluate_checkpoint(args.checkpoint, split=args.split, overrides=args.overrides)
    if args.evidence:
        from distill.analysis.evidence import checkpoint_evidence

        results["metrics"].update(checkpoint_evidence(args.checkpoint, split=args.split))
    print(json.dumps(results, indent=2))
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
        "overrides",
        nargs="*",
        help="dotted overrides of the stored recipe (e.g. data.root=/other/copy)",
    )
    p.set_defaults(func=_eval)
