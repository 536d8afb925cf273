"""Ranges of numeric recipe values, declared next to the schema fields they constrain.

A field declared as ``lr: float = ranged(3e-3, POSITIVE)`` carries its range in the dataclass
field's metadata; `distill.config.loader` checks every declared range after overrides are merged,
before anything is loaded, and `tests/config/test_ranges.py` fails on a numeric field declared
without one. Every range also requires a finite value: NaN and infinities are always refused.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: metadata key under which a field's Range is stored
RANGE = "range"


@dataclass(frozen=True)
class Range:
    """The values a numeric field accepts.

    `low`/`high` bound the value (None: unbounded; `*_open`: the bound itself is excluded);
    `whole_above`: values above it must be whole numbers (Lightning's batch limits: a fraction
    up to 1, a count of batches above); `off`: one value outside the bounds that is accepted
    too and means "off" (Lightning's `max_steps=-1`); `shape`: "scalar", "pair" (a list
    [low, high] with low <= high, each item in the bounds) or "each" (a list, each item in the
    bounds).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole_above: float | None = None
    off: float | None = None
    shape: str = "scalar"

    def accepts(self, value: Any) -> bool:
        """Whether `value` lies in the range (None is left to the field's type)."""
        if self.shape == "scalar":
            return self._accepts_number(value)
        if not isinstance(value, list | tuple):
            return False
        if not all(self._accepts_number(v) for v in value):
            return False
        if self.shape == "pair":
            return len(value) == 2 and value[0] <= value[1]
        return True

    def _accepts_number(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
        if self.off is not None and value == self.off:
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return self.whole_above is None or value <= self.whole_above or float(value).is_integer()

    def describe(self, integer: bool = False) -> str:
        """What the range accepts, in words (e.g. "a finite number > 0")."""
        kind = "integer" if integer else "finite number"
        bounds = self._bounds()
        if self.shape == "pair":
            items = f"{kind}s {bounds}" if bounds else f"{kind}s"
            return f"an ordered pair [low, high] of {items} with low <= high"
        if self.shape == "each":
            return f"a list of {kind}s {bounds}".rstrip()
        if self.whole_above is not None:
            return (
                f"a {kind} {bounds}: a fraction up to {_number(self.whole_above)}, "
                f"a whole number above"
            )
        article = "an" if kind[0] in "aeiou" else "a"
        text = f"{article} {kind} {bounds}" if bounds else f"any {kind}"
        return text if self.off is None else f"{text}, or {_number(self.off)} (off)"

    def _bounds(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{low}, {high}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {high}"
        return ""


def _number(value: float | None) -> str:
    """A bound as written in messages: whole numbers without a decimal point."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# the ranges the schema uses
POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
AT_LEAST_1 = Range(low=1)
UNIT = Range(low=0, high=1)  # probabilities and fractions
SEED = Range(low=0, high=2**32 - 1)  # what numpy and Lightning accept as a seed
ORDERED_PAIR = Range(shape="pair")
BATCH_LIMIT = Range(low=0, whole_above=1)
STEPS = Range(low=1, off=-1)  # a count of optimizer steps, or -1: no limit (Lightning's max_steps)
# Lightning's val_check_interval: a fraction of the epoch (0, 1], or a whole number of batches
VAL_CHECK = Range(low=0, low_open=True, whole_above=1)
INDICES = Range(shape="each")


def ranged(default: Any, allowed: Range) -> Any:
    """A dataclass field with `default` whose values must lie in `allowed`."""
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata={RANGE: allowed})
    return field(default=default, metadata={RANGE: allowed})


def range_of(f: dataclasses.Field) -> Range | None:
    """The Range declared on a dataclass field, or None."""
    return f.metadata.get(RANGE)


def schema_fields(schema: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted key, field, type hint) of every leaf field of a schema dataclass, nested sections
    included; the values of a mapping of sections (e.g. `losses.custom`) appear as `<name>`."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        section = section_type(hint)
        if section is not None:
            inner = f"{key}.<name>." if typing.get_origin(hint) is dict else f"{key}."
            yield from schema_fields(section, inner)
        else:
            yield key, f, hint


def section_type(hint: Any) -> type | None:
    """The dataclass of a nested section (`X` or `dict[str, X]`), or None for a leaf."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) is dict:
        value = typing.get_args(hint)[1]
        return value if dataclasses.is_dataclass(value) else None
    return None


def _leaf_types(hint: Any) -> set[Any]:
    """The types a hint is built from, None left out (`list[int] | None` -> {int})."""
    args = typing.get_args(hint)
    if not args:
        return set() if hint is type(None) else {hint}
    return set().union(*(_leaf_types(a) for a in args))


def is_numeric(hint: Any) -> bool:
    """Whether a field holds numbers: int or float, optionally None, or a list of them."""
    leaves = _leaf_types(hint)
    return bool(leaves) and leaves <= {int, float} and typing.get_origin(hint) is not dict


def is_integer(hint: Any) -> bool:
    """Whether a numeric field holds integers only."""
    return _leaf_types(hint) == {int}
