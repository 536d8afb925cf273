"""The `distill` command line: one subcommand per module in `distill.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import distill
import distill.commands
from distill.errors import DistillError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil attention audio teachers into compact on-device students.",
    )
    parser.add_argument("--version", action="version", version=f"distill {distill.__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback of an expected error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(distill.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"distill.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `distill` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # dotted overrides may also follow options (`fit RECIPE --resume trainer.max_epochs=3`)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (DistillError, OSError) as err:
        # expected errors (bad input, missing or unwritable files, stale caches): one line
        if args.debug:
            raise
        print(f"distill: error: {one_line(err)}", file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError with its file name, as `str` gives it)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
