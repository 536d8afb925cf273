"""`distill teach` (train the recipe's teacher) and `distill cache` (fill its caches)."""

from __future__ import annotations

import argparse
import json

from distill.commands import add_recipe_arguments


def _teach(args: argparse.Namespace) -> int:
    from distill.config import load_recipe
    from distill.pipeline.teach import teach

    cfg = load_recipe(args.recipe, args.overrides)
    results = teach(cfg, run_dir=args.run_dir, overwrite=args.overwrite)
    print(json.dumps(results.to_dict(), indent=2))
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `teach` and `cache`."""
    p = subparsers.add_parser(
        "teach", help="train the recipe's teacher and save it to teacher.path"
    )
    add_recipe_arguments(p)
    p.add_argument("--run-dir", default=None, help="run directory (default runs/<name>/<time>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a teacher already saved in teacher.path (refused without this flag)",
    )
    p.set_defaults(func=_teach)

    p = subparsers.add_parser(
        "cache",
        help="compute teacher outputs (and, with data.cache_features, student features) once "
        "per clip into caches",
    )
    add_recipe_arguments(p)
    p.add_argument("--rebuild", action="store_true", help="recompute even if up to date")
    p.set_defaults(func=_cache)
