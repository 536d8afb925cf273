"""Recipes: typed schema, loading, overrides and validation."""

from distill.config.loader import (
    RecipeError,
    apply_overrides,
    available_recipes,
    check_recipe,
    find_recipe,
    load_recipe,
    recipe_description,
    to_yaml,
)
from distill.config.schema import RecipeConfig

__all__ = [
    "RecipeConfig",
    "RecipeError",
    "apply_overrides",
    "available_recipes",
    "check_recipe",
    "find_recipe",
    "load_recipe",
    "recipe_description",
    "to_yaml",
]
