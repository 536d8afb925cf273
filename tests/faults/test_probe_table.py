"""docs/reliability.md's probe table: its "N of M rows fixed" count matches the rows, and every
test a row names exists (a row whose test file is missing must say it is pending)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
SECTION = "## The probe table of issue 23"


def table_rows() -> list[list[str]]:
    text = PAGE.read_text(encoding="utf-8")
    lines = text.split(SECTION, 1)[1].splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    return [c for c in cells[1:] if c[0].isdigit()]  # the header row and its rule left out


def named_tests(cell: str) -> list[tuple[str, str]]:
    """(file, test) pairs of a cell; `::name` continues the file named before it."""
    pairs, current = [], ""
    for ref in re.findall(r"`([^`]+)`", cell):
        path, _, name = ref.rpartition("::")
        current = path or current
        pairs.append((current, name))
    return pairs


def test_the_count_matches_the_table() -> None:
    rows = table_rows()
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    fixed = sum(r[3] == "fixed" for r in rows)
    text = PAGE.read_text(encoding="utf-8").split(SECTION, 1)[1]
    assert f"**{fixed} of {len(rows)} rows fixed**" in text
    assert all(r[3] in ("fixed", "pending (other helper)") for r in rows)


def test_every_named_test_exists() -> None:
    for row in table_rows():
        tests = named_tests(row[4])
        assert tests, f"row {row[0]} names no test"
        for path, name in tests:
            source = ROOT / path
            if not source.is_file():
                assert row[3].startswith("pending"), f"row {row[0]}: {path} does not exist"
                continue
            assert re.search(rf"^def {re.escape(name)}\(", source.read_text(), re.M), (path, name)
