"""Headless Chromium screenshot of a report (needs the Debian package `chromium`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distill.report import screenshot as report_screenshot
from distill.report.build import write_report
from tests.report.fakes import fake_recipe, write_grid, write_teacher


def test_missing_browser_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install -y chromium"):
        report_screenshot.find_browser()


@pytest.mark.skipif(
    not any(shutil.which(b) for b in report_screenshot.BROWSERS),
    reason="Chromium is not installed (Debian: apt-get install chromium)",
)
def test_screenshot_of_a_report(tmp_path: Path) -> None:
    import matplotlib.image

    write_teacher(tmp_path)
    out = tmp_path / "compare"
    html_path = write_report(fake_recipe(tmp_path), out, write_grid(out))
    png = report_screenshot.screenshot(html_path, tmp_path / "shot.png", height=1600)
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (1600, 1280)
    assert image[..., :3].std() > 0.05  # not a blank page
