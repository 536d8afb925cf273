"""Subcommands of the `distill` CLI: each module here defines `register(subparsers)`."""

from __future__ import annotations

import argparse


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """The positional RECIPE and its dotted overrides."""
    p.add_argument("recipe", help="recipe name (see `distill recipes`) or path to a .yaml file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=3")
