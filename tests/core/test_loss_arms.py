"""Loss arms of `distill compare`: the overrides each arm gives, weights after '@', bad arms."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from distill.config import RecipeConfig
from distill.core.losses.arms import DEFAULT_WEIGHTS, Arm


@pytest.fixture()
def recipe():
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.losses.logit_kd.weight = 0.5
    cfg.losses.temporal_kd.weight = 0.25
    return cfg


def weights_of(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides)


def test_plain_arms_use_the_recipe_weights_or_the_defaults(recipe) -> None:
    got = weights_of(Arm("logit+temporal").overrides(recipe))
    assert got["losses.logit_kd.weight"] == "0.5"
    assert got["losses.temporal_kd.weight"] == "0.25"
    assert got["losses.hint.weight"] == "0.0"
    assert got["losses.temporal_kd.target"] == "teacher"
    got = weights_of(Arm("hint").overrides(recipe))
    assert got["losses.hint.weight"] == str(DEFAULT_WEIGHTS["hint"])
    assert got["losses.logit_kd.weight"] == "0.0" and got["losses.temporal_kd.weight"] == "0.0"
    none = weights_of(Arm("none").overrides(recipe))
    assert all(none[f"losses.{t}.weight"] == "0.0" for t in DEFAULT_WEIGHTS)


def test_a_weight_after_at_sets_that_term_only(recipe) -> None:
    got = weights_of(Arm("temporal@0.1").overrides(recipe))
    assert got["losses.temporal_kd.weight"] == "0.1"
    assert got["losses.logit_kd.weight"] == "0.0"
    got = weights_of(Arm("logit@1.5+span@0.5").overrides(recipe))
    assert got["losses.logit_kd.weight"] == "1.5"
    assert got["losses.temporal_kd.weight"] == "0.5"
    assert got["losses.temporal_kd.target"] == "span"
    arm = Arm("temporal@0.5+logit")
    assert arm.tokens == ["temporal", "logit"] and not arm.is_control
    assert Arm("uniform@0.1").is_control


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ("tempral", "unknown loss arm 'tempral' in 'tempral'; valid: none, logit"),
        ("logit+kd@0.1", "unknown loss arm 'kd'"),
        ("none@0.1", "'none' takes no weight"),
        ("temporal@", "the weight after '@' must be a finite number > 0, given ''"),
        ("temporal@abc", "given 'abc'"),
        ("temporal@-0.1", "given '-0.1'"),
        ("temporal@0", "given '0'"),
        ("temporal@nan", "given 'nan'"),
        ("temporal@inf", "given 'inf'"),
        ("temporal@0.1+span@0.2", "two weights"),
        ("temporal+span", "two temporal targets"),
    ],
)
def test_bad_arms_are_refused_naming_the_part(recipe, arm: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Arm(arm).overrides(recipe)
