"""The package's public face: `__all__`, names loaded lazily, a light `distill.errors`, one
version string, `py.typed`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import distill
from distill import cli
from distill._version import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_all_lists_every_public_name_and_each_resolves() -> None:
    assert set(distill.__all__) == {"__version__", *distill._EXPORTS, *distill._SUBPACKAGES}
    for name in distill.__all__:
        assert getattr(distill, name) is not None, name
    assert set(distill.__all__) <= set(dir(distill))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distill.nope  # noqa: B018


def test_importing_the_package_or_its_errors_stays_light() -> None:
    code = (
        "import sys, distill, distill.errors\n"
        "heavy = sorted(m for m in ('torch', 'omegaconf') if m in sys.modules)\n"
        "print(distill.__version__, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == [__version__, "[]"]


def test_one_version_string(capsys: pytest.CaptureFixture[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "distill._version.__version__"}
    assert distill.__version__ == __version__
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"distill {__version__}"


def test_the_package_is_typed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["distill"]
    assert (ROOT / "distill" / "py.typed").is_file()
