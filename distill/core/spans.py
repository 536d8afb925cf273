"""Whether a data set has the ground-truth spans that span-supervised loss terms need (the
`span` and `span_timed` controls), and how to name those terms in an error.

Speech Commands-style sets (`synth_kws`, `speech_commands`, `noisy_speech_commands`) take the
speech onset and offset of each word from `manifest.csv`; without it a word's "span" would be
its whole source file, which is where the clip was placed, not where the word is spoken: no
ground truth. Event sets take them from `events_manifest.csv` and have none without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# loss term -> the setting that makes it read spans, for error messages
SPAN_SETTINGS = {
    "temporal_kd": "losses.temporal_kd.target=span",
    "timed": "losses.timed.target=span",
}


def missing_spans(dataset: Any, root: str | Path) -> str | None:
    """Why `dataset` (a ClipDataset) has no ground-truth spans, or None when it has them."""
    if getattr(dataset, "has_manifest", True) is False:
        return (
            f"the data in {root} has none: {Path(root) / 'manifest.csv'} (the speech onset and "
            "offset of every word) does not exist"
        )
    if not any(entry.events for entry in dataset.entries):
        return (
            f"the data in {root} has none (no manifest onsets/offsets, e.g. FSD50K without "
            "events_manifest.csv)"
        )
    return None


def span_settings(terms: list[str]) -> str:
    """The settings of `terms` that need spans, joined for a message."""
    return ", ".join(SPAN_SETTINGS.get(t, f"losses.{t}") for t in terms)


__all__ = ["SPAN_SETTINGS", "missing_spans", "span_settings"]
