"""Fixtures shared across test folders: tiny datasets in the real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_kws_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic keyword bank (tones as words) in the Speech Commands layout with a manifest."""
    from tests.data.fakes import make_synth_kws_bank

    root = tmp_path_factory.mktemp("kws_bank")
    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat"]
    speakers = [f"{i:08x}" for i in range(6)]
    make_synth_kws_bank(root, words, speakers, noise_seconds=6.0)
    return root
