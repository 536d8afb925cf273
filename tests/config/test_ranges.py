"""Ranges of numeric recipe values (distill.config.ranges): every numeric schema field declares
one, every default lies in it, and a value outside it is refused by `load_recipe` (and
`apply_overrides`) with one line naming the key, the value and the range."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from distill.config import RecipeConfig, RecipeError, apply_overrides, check_recipe, load_recipe
from distill.config.ranges import (
    Range,
    is_integer,
    is_numeric,
    range_of,
    ranged,
    schema_fields,
)

FIELDS = [(key, f, hint) for key, f, hint in schema_fields(RecipeConfig) if is_numeric(hint)]
RANGED = [(key, range_of(f), hint) for key, f, hint in FIELDS if range_of(f) is not None]
# fields for which no value of their type lies outside the range (ints cannot be NaN)
NOTHING_OUTSIDE = {"teacher.rollout_layers"}  # any Python index, checked against the teacher


def unranged_numeric_fields(schema: type) -> list[str]:
    return [k for k, f, h in schema_fields(schema) if is_numeric(h) and range_of(f) is None]


def test_every_numeric_field_declares_a_range() -> None:
    assert len(FIELDS) > 40
    assert unranged_numeric_fields(RecipeConfig) == []


@dataclasses.dataclass
class Inner:
    ok: float = ranged(1.0, Range(low=0))
    forgotten: int = 3
    name: str = "x"
    flag: bool = False
    maybe: list[float] | None = None


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    named: dict[str, Inner] = dataclasses.field(default_factory=dict)


def test_a_numeric_field_without_a_range_is_found() -> None:
    assert unranged_numeric_fields(Outer) == [
        "inner.forgotten",
        "inner.maybe",
        "named.<name>.forgotten",
        "named.<name>.maybe",
    ]


def test_every_default_lies_in_its_range() -> None:
    for key, field, _ in FIELDS:
        factory = field.default_factory
        default = factory() if factory is not dataclasses.MISSING else field.default
        assert default is None or range_of(field).accepts(default), (key, default)
    check_recipe(OmegaConf.structured(RecipeConfig))


def outside(allowed: Range, integer: bool) -> list[Any]:
    """Values of the field's type that the range refuses."""
    if allowed.shape == "pair":
        return [[1.0, 0.0], [5.0], [0.0, float("nan")]]
    if allowed.shape == "each":
        return [] if integer else [[float("nan")]]
    values: list[Any] = [] if integer else [float("nan"), float("inf"), float("-inf")]
    step = 1 if integer else 0.5
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - step)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + step)
    if allowed.whole_above is not None:
        values.append(allowed.whole_above + 0.5)
    return [float(v) if not integer else int(v) for v in values]


def as_yaml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return repr(value)


CASES = [
    pytest.param(key, value, allowed, is_integer(hint), id=f"{key}={as_yaml(value)}")
    for key, allowed, hint in RANGED
    for value in outside(allowed, is_integer(hint))
]


def test_every_range_but_the_index_lists_can_be_violated() -> None:
    violated = {case.values[0] for case in CASES}
    assert {key for key, _, _ in RANGED} - violated == NOTHING_OUTSIDE


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "r.yaml"
    path.write_text("name: r\ndata:\n  root: /data\n")
    return path


@pytest.mark.parametrize(("key", "value", "allowed", "integer"), CASES)
def test_a_value_outside_the_range_is_refused_naming_key_value_and_range(
    recipe: Path, key: str, value: Any, allowed: Range, integer: bool
) -> None:
    extra = []
    if "<name>" in key:  # a mapping of sections: name an entry (and give its required keys)
        key = key.replace("<name>", "mine")
        extra = [f"{key.rsplit('.', 1)[0]}.target=my.Loss"]
    override = f"{key}={as_yaml(value)}"
    shown = repr(value)
    expected = f"key '{key}' must be {allowed.describe(integer)}, given {shown}"
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe), [*extra, override])
    assert str(err.value) == expected


def test_overrides_of_a_saved_recipe_are_checked_too(recipe: Path) -> None:
    saved = OmegaConf.create(OmegaConf.to_container(load_recipe(str(recipe))))
    expected = r"key 'optim\.lr' must be a finite number > 0, given nan"
    with pytest.raises(RecipeError, match=expected):
        apply_overrides(saved, ["optim.lr=nan"])


def test_values_on_the_bounds_and_batch_counts_are_accepted(recipe: Path) -> None:
    cfg = load_recipe(
        str(recipe),
        [
            "losses.task.weight=0",
            "trainer.gradient_clip_val=0",
            "data.snr_db=[5, 5]",
            "data.augment.noise_prob=1",
            "trainer.limit_train_batches=0.5",
            "trainer.limit_val_batches=3",
            "teacher.rollout_layers=[-2, -1]",
            "trainer.max_steps=-1",
            "trainer.accumulate_grad_batches=1",
            "trainer.val_check_interval=1",
        ],
    )
    assert cfg.trainer.limit_val_batches == 3 and list(cfg.data.snr_db) == [5.0, 5.0]
    # Lightning's reading: an int is a number of batches (1: every batch), a float a fraction
    assert cfg.trainer.val_check_interval == 1 and isinstance(cfg.trainer.val_check_interval, int)


@pytest.mark.parametrize("value", [-1, 1, 500])
def test_max_steps_takes_minus_one_for_off_or_a_count(recipe: Path, value: int) -> None:
    assert load_recipe(str(recipe), [f"trainer.max_steps={value}"]).trainer.max_steps == value


@pytest.mark.parametrize("value", [-2, 0])
def test_max_steps_refuses_other_values_below_one(recipe: Path, value: int) -> None:
    expected = f"key 'trainer.max_steps' must be an integer >= 1, or -1 (off), given {value}"
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe), [f"trainer.max_steps={value}"])
    assert str(err.value) == expected


@pytest.mark.parametrize(
    ("allowed", "integer", "text"),
    [
        (Range(low=0, low_open=True), False, "a finite number > 0"),
        (Range(low=0), True, "an integer >= 0"),
        (Range(low=0, high=1), False, "a finite number in [0, 1]"),
        (Range(low=0, high=2**32 - 1), True, "an integer in [0, 4294967295]"),
        (Range(low=0, high=1, high_open=True), False, "a finite number in [0, 1)"),
        (
            Range(shape="pair"),
            False,
            "an ordered pair [low, high] of finite numbers with low <= high",
        ),
        (Range(shape="each"), True, "a list of integers"),
        (Range(), False, "any finite number"),
        (Range(low=1, off=-1), True, "an integer >= 1, or -1 (off)"),
        (
            Range(low=0, low_open=True, whole_above=1),
            False,
            "a finite number > 0: a fraction up to 1, a whole number above",
        ),
    ],
)
def test_ranges_read_as_words(allowed: Range, integer: bool, text: str) -> None:
    assert allowed.describe(integer) == text
