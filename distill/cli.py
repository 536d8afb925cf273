"""The `distill` command line: one subcommand per module in `distill.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import select
import sys

import distill.commands
from distill._version import __version__
from distill.errors import DistillError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil attention audio teachers into compact on-device students.",
    )
    parser.add_argument("--version", action="version", version=f"distill {__version__}")
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
        if isinstance(err, BrokenPipeError) and reader_gone():
            return 1  # `distill recipes | head`: the reader has all it wanted
        # expected errors (bad input, missing or unwritable files, stale caches): one line
        if args.debug:
            raise
        close_progress_bars()
        print(f"distill: error: {one_line(err)}", file=sys.stderr)
        return 2


def close_progress_bars() -> None:
    """End the progress bars an error interrupted, so that its line starts a line of its own."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar half torn down already: nothing to tidy
            continue


def reader_gone() -> bool:
    """Whether the reader of stdout has gone (a pipe closed at its other end); stdout is then
    silenced so that nothing more is written to it, at exit included."""
    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, 0)
        gone = any(event & select.POLLERR for _, event in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a file
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return gone


# how torch's DataLoader words an error raised again from a worker process: the message holds
# the worker's formatted traceback, whose last line is "module.ErrorType: the original message"
WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError with its file name, as `str` gives it; for
    an error raised in a data-loader worker, the worker's own message without its traceback)."""
    text = str(err)
    if WORKER_TRACEBACK in text:
        text = worker_message(text, type(err).__name__)
    text = " ".join(text.split())
    return text or type(err).__name__


def worker_message(text: str, name: str) -> str:
    """The original message in the text of an error a DataLoader worker raised (see above)."""
    lines = text.split(WORKER_TRACEBACK, 1)[1].strip().splitlines()
    for line in reversed(lines):
        head, sep, rest = line.partition(": ")
        if sep and (head == name or head.endswith(f".{name}")):
            return rest
    return lines[-1] if lines else text


if __name__ == "__main__":
    sys.exit(main())
