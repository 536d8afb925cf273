"""Loss arms of a grid: '+'-joined tokens (logit, temporal, span, ...) with optional '@weight'."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from distill.core.losses.registry import PLAIN_ARMS, specs
from distill.errors import BadValueError

# The registered distillation terms an arm switches on or off (every other one it sets to 0).
_KD_SPECS = [s for s in specs() if s.distills]

# Weights used for an arm when the recipe leaves that loss at 0.
DEFAULT_WEIGHTS = {s.name: s.default_weight for s in _KD_SPECS}

# Arm token -> (loss term or None, settings of the term besides its weight). Controls supervise
# the same head with something other than the teacher, to tell the teacher's knowledge from mere
# localisation. `none` and its other name `clip` switch every distilling term off.
ARM_TOKENS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "none": (None, {}),
    **{token: (s.name, dict(sets)) for s in _KD_SPECS for token, sets in s.arm_tokens.items()},
    **{token: (None, {}) for token in PLAIN_ARMS if token != "none"},
}

CONTROL_TOKENS = tuple(token for s in _KD_SPECS for token in s.controls)

# (term, setting, the schema's default) for every setting an arm token may change: an arm that
# does not ask for one sets it back to the default.
_SETTINGS = [
    (s.name, key, getattr(s.config(), key))
    for s in _KD_SPECS
    for key in dict.fromkeys(k for sets in s.arm_tokens.values() for k in sets)
]


@dataclass(frozen=True)
class Arm:
    """One loss configuration of the grid, e.g. `logit+temporal` or the control `span`.

    A token may carry its own weight, `temporal@0.1`, so that one grid sweeps a loss weight
    (the paper's lambda); without one the recipe's weight (or DEFAULT_WEIGHTS) is used."""

    name: str

    @property
    def weighted_tokens(self) -> list[tuple[str, float | None]]:
        """(token, weight or None) per '+'-joined part, checked against ARM_TOKENS."""
        parts = []
        for part in self.name.split("+"):
            token, sep, weight_text = part.partition("@")
            if token not in ARM_TOKENS:
                raise BadValueError(
                    f"unknown loss arm {token!r} in {self.name!r}; valid: "
                    f"{', '.join(ARM_TOKENS)} (join with '+', e.g. logit+temporal; a weight "
                    "follows '@', e.g. temporal@0.1)"
                )
            weight = None
            if sep:
                if ARM_TOKENS[token][0] is None:
                    raise BadValueError(f"loss arm {self.name!r}: {token!r} takes no weight")
                try:
                    weight = float(weight_text)
                except ValueError:
                    weight = float("nan")
                if not (math.isfinite(weight) and weight > 0):
                    raise BadValueError(
                        f"loss arm {self.name!r}: the weight after '@' must be a finite "
                        f"number > 0, given {weight_text!r}"
                    )
            parts.append((token, weight))
        return parts

    @property
    def tokens(self) -> list[str]:
        """The loss tokens without their weights (not checked: `overrides` checks them)."""
        return [part.partition("@")[0] for part in self.name.split("+")]

    @property
    def is_control(self) -> bool:
        return any(t in CONTROL_TOKENS for t in self.tokens)

    def overrides(self, cfg: DictConfig) -> list[str]:
        """Dotted overrides that switch the recipe's losses to this arm."""
        weights = {term: 0.0 for term in DEFAULT_WEIGHTS}
        settings: dict[tuple[str, str], Any] = {}
        for token, weight in self.weighted_tokens:
            term, sets = ARM_TOKENS[token]
            if term is None:
                continue
            if weight is None:
                recipe_weight = float(cfg.losses[term].weight)
                weight = recipe_weight if recipe_weight > 0 else DEFAULT_WEIGHTS[term]
            if weights[term] > 0 and weights[term] != weight:
                raise BadValueError(
                    f"loss arm {self.name!r} gives losses.{term} two weights "
                    f"({weights[term]} and {weight})"
                )
            weights[term] = weight
            for key, value in sets.items():
                given = settings.setdefault((term, key), value)
                if given != value:
                    first = next(t for t, (name, _) in ARM_TOKENS.items() if name == term)
                    raise BadValueError(
                        f"loss arm {self.name!r} asks for two {first} {key}s ({given}, {value})"
                    )
        out = [f"losses.{term}.weight={w}" for term, w in weights.items()]
        for term, key, default in _SETTINGS:
            out.append(f"losses.{term}.{key}={settings.get((term, key), default)}")
        return out
