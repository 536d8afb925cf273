"""Noisy Speech Commands: a keyword placed at a random position inside background noise.

Each keyword clip (natural length, about 1 s) is put at a position drawn uniformly so that it
lies wholly inside a clip of `clip_seconds` (1, 2, 4, 6, 8 s); a keyword longer than the clip is
centre-cropped. A noise segment of the full clip length is drawn from the split's background
noise (split-disjoint, see `distill.data.noise`) and scaled so that the SNR, drawn uniformly
from `snr_db`, holds between the keyword's speech (the manifest's onset..offset for a
synthetic bank, the whole keyword clip for real Speech Commands) and the noise segment.
`_silence_` items are noise only, at a gain drawn uniformly from [0, 1], spans all NaN.

Training draws a new mixture every epoch from (seed, epoch, clip id), or from ``epoch %
train_variants`` fixed variants per clip when `train_variants` > 0 (clip id ``<path>#v<k>``;
``<path>#e<epoch>`` without variants). Validation/test use one fixed mixture per clip
(``<path>#eval``). A mixture never depends on the clip's position in the list, so adding or
removing a file leaves every other clip's mixture as it was. Nothing is written to disk;
`describe_mixtures` lists the parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from distill.config.schema import DataConfig
from distill.data.audio import empty_spans, load_audio, make_spans, noise_scale, place, power
from distill.data.base import STREAM_MIX, ClipDataset, Entry, rng_for
from distill.data.noise import NoiseBank
from distill.data.registry import register_dataset
from distill.data.speech_commands import (
    bank_version,
    bank_words,
    config_classes,
    list_keywords,
    resolve_classes,
    silence_entries,
    subsample_unknown,
)
from distill.errors import BadValueError, MissingFileError


class NoisySpeechCommands(ClipDataset):
    """Keywords of a Speech Commands-style bank mixed into background noise on the fly."""

    random_train_audio = True
    eval_suffix = "#eval"

    def __init__(
        self,
        root: str | Path,
        split: str,
        classes: str | list[str] = "12",
        sample_rate: int = 16000,
        clip_seconds: float = 1.0,
        snr_db: tuple[float, float] | list[float] = (-5.0, 20.0),
        seed: int = 0,
        train_variants: int = 0,
        skip_bad_files: bool = False,
        limit: int = 0,
        augment=None,
        require_manifest: bool = False,
        unknown_ratio: float = 0.0,
    ) -> None:
        super().__init__(
            split, sample_rate, clip_seconds, seed, train_variants, skip_bad_files, augment
        )
        if len(snr_db) != 2 or float(snr_db[0]) > float(snr_db[1]):
            raise BadValueError(f"snr_db must be [low, high] with low <= high, given {snr_db}")
        self.snr = (float(snr_db[0]), float(snr_db[1]))
        self.root = Path(root)
        if require_manifest and not (self.root / "manifest.csv").is_file():
            raise MissingFileError(
                f"{self.root / 'manifest.csv'} does not exist: a synth_kws bank needs it "
                "(is data.root a synthetic bank? use data.name noisy_speech_commands for real SC)"
            )
        self.class_names = resolve_classes(self.root, classes)
        self.version = bank_version(bank_words(self.root))
        self.entries, self.skipped, meta = list_keywords(
            self.root, self.split, self.class_names, self.skip_bad_files
        )
        self.has_manifest = meta["manifest"]
        self.entries = subsample_unknown(self.entries, self.class_names, unknown_ratio)
        self.entries += silence_entries(len(self.entries), self.class_names)
        self.noise = NoiseBank.from_root(self.root, self.split, sample_rate, skip_bad_files)
        self._finish(limit)

    def _source_len(self, entry: Entry) -> int:
        info = entry.meta["info"]
        return math.ceil(info.frames * self.sample_rate / info.sample_rate)

    def mixture(self, index: int, draw: int) -> dict[str, Any]:
        """Parameters of the mixture of item `index` at `draw` (a pure function of the item's
        clip id, the draw, the seed and the split's noise files)."""
        entry = self.entries[index]
        n, sr = self.clip_samples, self.sample_rate
        rng = rng_for(self.seed, STREAM_MIX, self.split, draw, entry.clip_id)
        if entry.path is None:
            k, start = self.noise.choose(n, rng)
            return {
                "noise_index": k,
                "noise_offset": start,
                "gain": float(rng.uniform(0, 1)),
                "position": 0,
                "offset": start,
                "snr_db": float("nan"),
                "events": [],
            }
        kw_len = self._source_len(entry)
        if kw_len > n:
            position, offset = 0, (kw_len - n) // 2
        else:
            position = int(rng.integers(0, n - kw_len + 1))
            offset = -position
        k, start = self.noise.choose(n, rng)
        snr = float(rng.uniform(*self.snr))
        shift = offset / sr
        events = [(max(a - shift, 0.0), min(b - shift, self.clip_seconds)) for a, b in entry.events]
        return {
            "noise_index": k,
            "noise_offset": start,
            "gain": 1.0,
            "position": position,
            "offset": offset,
            "snr_db": snr,
            "events": events,
        }

    def _load(self, entry: Entry, index: int, draw: int):
        n, sr = self.clip_samples, self.sample_rate
        mix = self.mixture(index, draw)
        noise = self.noise.cut(mix["noise_index"], mix["noise_offset"], n)
        if entry.path is None:
            return noise * mix["gain"], mix["offset"], empty_spans()
        kw = place(load_audio(entry.path, sr), self._source_len(entry), 0)
        a, b = entry.events[0] if entry.events else (0.0, kw.shape[0] / sr)
        speech = kw[int(a * sr) : max(int(b * sr), int(a * sr) + 1)]
        p_noise = power(noise)
        scale = noise_scale(power(speech), p_noise, mix["snr_db"]) if p_noise > 0 else 0.0
        wave = place(kw, n, mix["offset"]).add_(noise, alpha=scale)
        spans = make_spans(entry.events, mix["offset"] / sr, self.clip_seconds)
        return wave, mix["offset"], spans

    def describe_mixtures(self, n: int | None = None, epoch: int = 0) -> list[dict[str, Any]]:
        """Mixture parameters of the first `n` items (all by default) at `epoch`: clip id,
        label, keyword file, noise file and start sample, keyword position (samples), SNR,
        gain, and keyword onset/offset (seconds in the mixed clip; NaN for silence)."""
        draw, suffix = self.draw(epoch)
        rows = []
        for i, entry in enumerate(self.entries[: len(self.entries) if n is None else n]):
            mix = self.mixture(i, draw)
            onset, offset = mix["events"][0] if mix["events"] else (math.nan, math.nan)
            rows.append(
                {
                    "clip_id": entry.clip_id + suffix,
                    "label": self.class_names[int(entry.target)],
                    "keyword_file": entry.path or "",
                    "noise_file": self.noise.names[mix["noise_index"]],
                    "noise_offset": mix["noise_offset"],
                    "position": mix["position"],
                    "snr_db": mix["snr_db"],
                    "gain": mix["gain"],
                    "onset": onset,
                    "offset": offset,
                }
            )
        return rows

    def speakers(self) -> set[str]:
        """Speakers of this split's keyword clips."""
        return {e.meta["speaker"] for e in self.entries if e.path is not None}


def _noisy(cfg: DataConfig, split: str, require_manifest: bool, **common: Any) -> ClipDataset:
    return NoisySpeechCommands(
        cfg.root,
        split,
        classes=cfg.classes,
        snr_db=list(cfg.snr_db),
        require_manifest=require_manifest,
        unknown_ratio=cfg.unknown_ratio,
        **common,
    )


@register_dataset("noisy_speech_commands", task="single_label", class_names=config_classes)
def build_noisy_speech_commands(cfg: DataConfig, split: str, **common: Any) -> ClipDataset:
    """Speech Commands keywords placed inside background noise (`noisy_speech_commands`)."""
    return _noisy(cfg, split, require_manifest=False, **common)


@register_dataset("synth_kws", task="single_label", class_names=config_classes)
def build_synth_kws(cfg: DataConfig, split: str, **common: Any) -> ClipDataset:
    """A keyword bank from `distill data synth-kws` (`synth_kws`; its manifest is required)."""
    return _noisy(cfg, split, require_manifest=True, **common)
