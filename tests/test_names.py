"""The registries' shared naming rules (distill/names.py)."""

from __future__ import annotations

import pytest

from distill.errors import BadValueError
from distill.names import did_you_mean, register_name


def test_a_name_is_registered_once_and_without_dots() -> None:
    table: dict[str, int] = {}
    register_name(table, "tc_resnet8", 1, "student name")
    assert table == {"tc_resnet8": 1}
    with pytest.raises(BadValueError, match="student name 'tc_resnet8' is already registered"):
        register_name(table, "tc_resnet8", 2, "student name")
    with pytest.raises(BadValueError, match="teacher kind 'x' is already registered"):
        register_name(table, "x", 3, "teacher kind", taken=["x"])
    with pytest.raises(BadValueError, match=r"'my.pkg' must not contain '\.'"):
        register_name(table, "my.pkg", 4, "data set name")
    register_name(table, "my.pkg", 4, "loss term", dotted_ok=True)
    assert table == {"tc_resnet8": 1, "my.pkg": 4}


def test_close_names_are_suggested_and_far_ones_not() -> None:
    names = ["tc_resnet8", "tc_resnet14", "gru"]
    assert did_you_mean("tc_resnet9", names) == " Did you mean: tc_resnet8, tc_resnet14?"
    assert did_you_mean("wav2vec", names) == ""
    assert did_you_mean("tc_resnet9", names, n=1) == " Did you mean: tc_resnet8?"
