"""`AudioDataModule`: the recipe's `data` section -> datasets and data loaders.

Epochs reach the datasets through the sampler: `EpochSampler` yields ``(epoch, index)`` pairs,
so training mixtures/crops/augmentation change per epoch even inside persistent worker
processes. Lightning calls `set_epoch` on the train loader's sampler at the start of every
epoch; `AudioDataModule.set_epoch` does the same by hand (for loops outside Lightning).
Under DDP, build the Trainer with ``use_distributed_sampler=False``: the sampler shards itself
by the trainer's world size and rank.
"""

from __future__ import annotations

from distill.errors import BadValueError, MissingFileError

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Sampler

from distill.config.schema import DataConfig
from distill.data.augment import build_waveform_augment
from distill.data.base import ClipDataset, canonical_split, collate
from distill.data.folder import FolderDataset
from distill.data.fsd50k import FSD50K, read_vocabulary
from distill.data.noise import NoiseBank
from distill.data.noisy import NoisySpeechCommands
from distill.data.speech_commands import SpeechCommands, resolve_classes

SPEECH_KINDS = ("synth_kws", "speech_commands", "noisy_speech_commands")
EVENT_KINDS = ("fsd50k", "synth_events")
KINDS = SPEECH_KINDS + EVENT_KINDS + ("folder",)


def to_data_config(cfg: DataConfig | DictConfig | dict) -> DataConfig:
    """A validated DataConfig from a dataclass, DictConfig or dict (unknown keys are errors)."""
    if isinstance(cfg, DataConfig):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg)
    return OmegaConf.to_object(merged)


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``; shuffles with a permutation seeded by (seed, epoch)."""

    def __init__(
        self, size: int, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        if self.num_replicas > 1:  # pad by wrapping so every rank gets the same count
            total = -(-self.size // self.num_replicas) * self.num_replicas
            order = (order + order[: total - self.size])[self.rank :: self.num_replicas]
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, i) for i in self._order()])

    def __len__(self) -> int:
        return -(-self.size // self.num_replicas)


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a loader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class AudioDataModule(pl.LightningDataModule):
    """Datasets, loaders and class information of one recipe's `data` section."""

    def __init__(self, cfg: DataConfig | DictConfig | dict) -> None:
        super().__init__()
        self.cfg = to_data_config(cfg)
        c = self.cfg
        if c.name not in KINDS:
            raise BadValueError(f"data.name {c.name!r} is not one of {', '.join(KINDS)}")
        if c.name in SPEECH_KINDS and c.task != "single_label":
            raise BadValueError(f"data.task must be single_label for {c.name}, given {c.task!r}")
        if c.name in EVENT_KINDS and c.task != "multi_label":
            raise BadValueError(f"data.task must be multi_label for {c.name}, given {c.task!r}")
        if c.name in EVENT_KINDS and str(c.classes).strip() != "all":
            raise BadValueError(
                f"data.classes must be 'all' for {c.name} (vocabulary.csv fixes the "
                f"classes), given {c.classes!r}"
            )
        if c.batch_size <= 0 or c.num_workers < 0:
            raise BadValueError(
                f"data.batch_size must be > 0 and data.num_workers >= 0, given "
                f"{c.batch_size} and {c.num_workers}"
            )
        self._datasets: dict[str, ClipDataset] = {}
        self._served: dict[str, Any] = {}
        self._train_sampler: EpochSampler | None = None

    # ------------------------------------------------------------------ facts
    @property
    def task(self) -> str:
        return self.cfg.task

    @property
    def clip_samples(self) -> int:
        return int(round(self.cfg.clip_seconds * self.cfg.sample_rate))

    @property
    def class_names(self) -> list[str]:
        if self._datasets:
            return list(next(iter(self._datasets.values())).class_names)
        c = self.cfg
        if c.name in SPEECH_KINDS:
            return resolve_classes(c.root, c.classes)
        if c.name in EVENT_KINDS:
            return read_vocabulary(c.root)
        return self.dataset("train").class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # ------------------------------------------------------------------ datasets
    def dataset(self, split: str) -> ClipDataset:
        """The dataset of a split (built once)."""
        split = canonical_split(split)
        if split not in self._datasets:
            self._datasets[split] = self._build(split)
        return self._datasets[split]

    def _build(self, split: str) -> ClipDataset:
        c = self.cfg
        limit = c.limit_train if split == "train" else c.limit_eval
        augment = None
        if split == "train":
            bank = (
                NoiseBank.from_root(c.root, "train", c.sample_rate, c.skip_bad_files)
                if c.augment.noise_prob > 0
                else None
            )
            augment = build_waveform_augment(c.augment, c.sample_rate, c.clip_seconds, bank)
        common: dict[str, Any] = dict(
            sample_rate=c.sample_rate,
            clip_seconds=c.clip_seconds,
            seed=c.seed,
            train_variants=c.train_variants,
            skip_bad_files=c.skip_bad_files,
            limit=limit,
            augment=augment,
        )
        if c.name in ("synth_kws", "noisy_speech_commands"):
            return NoisySpeechCommands(
                c.root,
                split,
                classes=c.classes,
                snr_db=list(c.snr_db),
                require_manifest=c.name == "synth_kws",
                unknown_ratio=c.unknown_ratio,
                **common,
            )
        if c.name == "speech_commands":
            return SpeechCommands(
                c.root,
                split,
                classes=c.classes,
                crop=c.crop,
                unknown_ratio=c.unknown_ratio,
                **common,
            )
        if c.name in EVENT_KINDS:
            if c.name == "synth_events" and not (Path(c.root) / "events_manifest.csv").is_file():
                raise MissingFileError(
                    f"{c.root}/events_manifest.csv does not exist: a "
                    "synth_events root needs it (use data.name fsd50k for "
                    "real FSD50K)"
                )
            return FSD50K(c.root, split, crop=c.crop, **common)
        return FolderDataset(c.root, split, classes=c.classes, task=c.task, crop=c.crop, **common)

    def describe_mixtures(
        self, split: str, n: int | None = None, epoch: int = 0
    ) -> list[dict[str, Any]]:
        """Mixture parameters of the first `n` clips of `split` (noisy data sets only), e.g. to
        dump a manifest of the validation/test mixtures for inspection."""
        ds = self.dataset(split)
        if not hasattr(ds, "describe_mixtures"):
            raise BadValueError(
                f"data.name {self.cfg.name!r} does not mix audio; describe_mixtures "
                "needs synth_kws or noisy_speech_commands"
            )
        return ds.describe_mixtures(n, epoch)

    def setup(self, stage: str | None = None) -> None:
        splits = {
            "fit": ["train", "validation"],
            "validate": ["validation"],
            "test": ["test"],
            "predict": ["test"],
        }.get(stage or "", ["train", "validation", "test"])
        for split in splits:
            self.dataset(split)

    def serve(self, split: str, dataset: Any) -> None:
        """Let the loaders of `split` read `dataset` (same indexing as the split's dataset, e.g.
        `distill.caches.feature_cache.CachedFeatures`) instead of the split's dataset."""
        self._served[canonical_split(split)] = dataset

    def stop_serving(self) -> None:
        """Loaders read the clip datasets again (waveforms)."""
        self._served.clear()

    # ------------------------------------------------------------------ loaders
    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        """A loader over `split` yielding collated batches (see `distill.data.base.collate`)."""
        split = canonical_split(split)
        ds = self._served[split] if split in self._served else self.dataset(split)
        replicas, rank = 1, 0
        trainer = getattr(self, "trainer", None)
        if trainer is not None and split == "train" and trainer.world_size > 1:
            replicas, rank = trainer.world_size, trainer.global_rank
        sampler = EpochSampler(len(ds), shuffle, self.cfg.seed, replicas, rank)
        if split == "train":
            self._train_sampler = sampler
            sampler.set_epoch(ds.epoch)
        workers = self.cfg.num_workers
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def set_epoch(self, epoch: int) -> None:
        """Select the training epoch (mixtures, crops, augmentation, shuffling)."""
        if "train" in self._datasets:
            self._datasets["train"].set_epoch(epoch)
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(epoch)


def build_datamodule(data_cfg: DataConfig | DictConfig | dict) -> AudioDataModule:
    """The AudioDataModule of a recipe's `data` section."""
    return AudioDataModule(data_cfg)
