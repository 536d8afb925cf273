"""`distill teach`, `distill cache`, `distill fit` and `distill eval`."""

from __future__ import annotations

import argparse
import json


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe name (see `distill recipes`) or path to a .yaml file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=3")


def _teach(args: argparse.Namespace) -> int:
    from distill.config import load_recipe
    from distill.pipeline.teach import teach

    results = teach(load_recipe(args.recipe, args.overrides), run_dir=args.run_dir)
    print(json.dumps(results, indent=2))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from distill.caches.build import build_caches
    from distill.config import load_recipe

    cfg = load_recipe(args.recipe, args.overrides)
    if cfg.teacher.kind == "none" and not cfg.data.cache_features:
        raise SystemExit(
            "distill cache: the recipe has teacher.kind=none and data.cache_features=false; "
            "nothing to cache"
        )
    cache, features = build_caches(
        cfg, teacher=cfg.teacher.kind != "none", features=True, rebuild=args.rebuild
    )
    if cache is not None:
        print(f"teacher cache ready in {cache.directory}")
    if features is not None:
        print(f"feature cache ready in {features.directory}")
    return 0


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
    print(json.dumps(results, indent=2))
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
    """Add the training commands."""
    p = subparsers.add_parser(
        "teach", help="train the recipe's teacher and save it to teacher.path"
    )
    _recipe_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default runs/<name>/<time>)")
    p.set_defaults(func=_teach)

    p = subparsers.add_parser(
        "cache",
        help="compute teacher outputs (and, with data.cache_features, student features) once "
        "per clip into caches",
    )
    _recipe_args(p)
    p.add_argument("--rebuild", action="store_true", help="recompute even if up to date")
    p.set_defaults(func=_cache)

    p = subparsers.add_parser("fit", help="train the recipe's student (with its KD losses)")
    _recipe_args(p)
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
