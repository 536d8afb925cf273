"""Test-local data sets plugged in without touching the package: one builder named by dotted
path, one registered by name. Clips are pure tones whose pitch is the class (no files)."""

from __future__ import annotations

import math
from typing import Any

import torch

from distill.config.schema import DataConfig
from distill.data.audio import make_spans
from distill.data.base import ClipDataset, Entry
from distill.data.registry import register_dataset

TONE_CLASSES = ["low", "mid", "high"]


class ToneSet(ClipDataset):
    """`per_class` clips per class: a tone of 200, 400 or 800 Hz in the middle half of the clip."""

    def __init__(self, split: str, per_class: int = 4, **common: Any) -> None:
        limit = common.pop("limit", 0)
        super().__init__(split, **common)
        self.class_names = list(TONE_CLASSES)
        for k, name in enumerate(self.class_names):
            for i in range(per_class):
                self.entries.append(Entry(None, k, f"{self.split}/{name}_{i}"))
        self._finish(limit)

    def _load(self, entry: Entry, index: int, draw: int):
        n = self.clip_samples
        t = torch.arange(n) / self.sample_rate
        wave = torch.sin(2 * math.pi * 200 * 2 ** int(entry.target) * t)
        wave[: n // 4] = 0.0
        wave[3 * n // 4 :] = 0.0
        quarter = self.clip_seconds / 4
        return wave, 0, make_spans([(quarter, 3 * quarter)], 0.0, self.clip_seconds)


def build_tones(cfg: DataConfig, split: str, **common: Any) -> ToneSet:
    """Not registered: used through `data.name: tests.data.custom_dataset.build_tones`."""
    common.pop("skip_bad_files")
    return ToneSet(split, **common)


def tone_classes(cfg: DataConfig) -> list[str]:
    return list(TONE_CLASSES)


@register_dataset("test_tones", task="single_label", class_names=tone_classes)
def build_registered_tones(cfg: DataConfig, split: str, **common: Any) -> ToneSet:
    """Registered as `test_tones` when this module is imported."""
    common.pop("skip_bad_files")
    return ToneSet(split, per_class=2, **common)


def build_not_a_dataset(cfg: DataConfig, split: str, **common: Any) -> list[int]:
    """A builder that returns the wrong thing."""
    return [1, 2, 3]
