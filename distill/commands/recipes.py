"""`distill recipes` and `distill show`: list recipes, print a resolved recipe."""

from __future__ import annotations

import argparse

from distill.commands import add_recipe_arguments
from distill.config import available_recipes, load_recipe, recipe_description, to_yaml


def _list(args: argparse.Namespace) -> int:
    recipes = available_recipes()
    if not recipes:
        print("no recipes found")
        return 0
    width = max(len(name) for name in recipes)
    for name, path in recipes.items():
        print(f"{name:<{width}}  {recipe_description(path)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(to_yaml(load_recipe(args.recipe, args.overrides)), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `recipes` and `show`."""
    p = subparsers.add_parser("recipes", help="list the recipes with their descriptions")
    p.set_defaults(func=_list)
    p = subparsers.add_parser("show", help="print a recipe fully resolved, after overrides")
    add_recipe_arguments(p)
    p.set_defaults(func=_show)
