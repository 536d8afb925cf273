"""`distill students` prints one row per student with params, MACs, input and tap."""

from __future__ import annotations

import pytest

from distill import students
from distill.cli import main


def test_students_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["students"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(" | ")[0].strip() == "name"
    rows = {line.split(" | ")[0].strip(): line for line in lines[1:]}
    assert set(rows) == set(students.available())
    assert "65.2K" in rows["tc_resnet8"] and "1.52M" in rows["tc_resnet8"]
    assert "40 x 98 (paper)" in rows["tc_resnet8"] and "blocks (BCFT)" in rows["tc_resnet8"]
    assert "40 x 101 (1 s)" in rows["mobilenetv3_small"]


def test_students_table_given_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["students", "--no-paper-input", "--seconds", "2", "--n-features", "64"]) == 0
    rows = {line.split(" | ")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "64 x 201 (2 s)" in rows["gru"]
    assert "not buildable" in rows["bc_resnet1"]
