"""Loss arms of a grid: '+'-joined tokens (logit, temporal, span, ...) with optional '@weight'."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from distill.errors import BadValueError

# Weights used for an arm when the recipe leaves that loss at 0.
DEFAULT_WEIGHTS = {"logit_kd": 0.5, "temporal_kd": 0.25, "hint": 0.1, "attention_transfer": 0.5}


# Arm token -> (loss term, temporal target or None). Controls supervise the same head with
# something other than the teacher, to tell the teacher's knowledge from mere localisation.
ARM_TOKENS: dict[str, tuple[str | None, str | None]] = {
    "none": (None, None),
    "logit": ("logit_kd", None),
    "temporal": ("temporal_kd", "teacher"),
    "hint": ("hint", None),
    "at": ("attention_transfer", None),
    "span": ("temporal_kd", "span"),
    "shuffled": ("temporal_kd", "shuffled"),
    "uniform": ("temporal_kd", "uniform"),
}


CONTROL_TOKENS = ("span", "shuffled", "uniform")


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
        target = None
        for token, weight in self.weighted_tokens:
            term, tgt = ARM_TOKENS[token]
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
            if tgt is not None:
                if target not in (None, tgt):
                    raise BadValueError(
                        f"loss arm {self.name!r} asks for two temporal targets ({target}, {tgt})"
                    )
                target = tgt
        out = [f"losses.{term}.weight={w}" for term, w in weights.items()]
        out.append(f"losses.temporal_kd.target={target or 'teacher'}")
        return out
