"""A PNG screenshot of an HTML report, taken with headless Chromium (Debian package `chromium`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from distill.errors import MissingFileError, UsageError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str:
    """Path of a Chromium executable, or a RuntimeError saying how to install one."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise UsageError(
        f"no Chromium found on PATH (looked for {', '.join(BROWSERS)}); install it with "
        "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu)"
    )


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    width: int = 1280,
    height: int = 2400,
    timeout: float = 120.0,
) -> Path:
    """Render `html_path` headlessly at width x height pixels into `png_path`; return it."""
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    if not html_path.is_file():
        raise MissingFileError(f"screenshot: no HTML file at {html_path}")
    browser = find_browser()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="distill-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            html_path.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png_path.is_file():
        raise UsageError(
            f"{browser} did not write {png_path} (exit {done.returncode}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    return png_path
