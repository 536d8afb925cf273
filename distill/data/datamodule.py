"""`AudioDataModule`: the recipe's `data` section -> datasets and data loaders.

Epochs reach the datasets through the sampler: `EpochSampler` yields ``(epoch, index)`` pairs,
so training mixtures/crops/augmentation change per epoch even inside persistent worker
processes. Lightning calls `set_epoch` on the train loader's sampler at the start of every
epoch; `AudioDataModule.set_epoch` does the same by hand (for loops outside Lightning).
Under DDP, build the Trainer with ``use_distributed_sampler=False``: the sampler shards itself
by the trainer's world size and rank.

Resume mid-epoch: the training loader is a `ResumableLoader` whose state (the epoch and how
many of its batches were consumed) goes into every checkpoint through
`AudioDataModule.state_dict`; on resume the datamodule hands it to the new loader, whose
sampler then starts at the first batch not yet trained on, so the resumed run sees exactly the
batches the uninterrupted run would have seen. Worker processes need no state of their own: an
item is a pure function of (seed, split, draw, clip id) (see `distill.data.base`), whatever the
worker or its seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Sampler

from distill.config.schema import DataConfig
from distill.data import (  # noqa: F401  (imported to register the built-in data sets)
    folder,
    fsd50k,
    noisy,
    speech_commands,
)
from distill.data.augment import build_waveform_augment
from distill.data.base import ClipDataset, canonical_split, collate
from distill.data.noise import NoiseBank
from distill.data.registry import spec as dataset_spec
from distill.errors import BadValueError


def to_data_config(cfg: DataConfig | DictConfig | dict) -> DataConfig:
    """A validated DataConfig from a dataclass, DictConfig or dict (unknown keys are errors)."""
    if isinstance(cfg, DataConfig):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg)
    return OmegaConf.to_object(merged)


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``; shuffles with a permutation seeded by (seed, epoch).

    `start_at(epoch, position)` makes the next pass over `epoch` begin `position` items into
    this rank's order (resume mid-epoch); `__len__` stays the whole epoch's length.
    """

    def __init__(
        self, size: int, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self._start: tuple[int, int] | None = None  # (epoch, position) of a resumed pass
        self.pass_epoch, self.pass_start = 0, 0  # the pass begun last

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def start_at(self, epoch: int, position: int) -> None:
        """Begin the next pass over `epoch` at `position` (items of this rank's order)."""
        if not 0 <= position <= len(self):
            raise BadValueError(
                f"resume position {position} is outside epoch {epoch}'s {len(self)} items"
            )
        self._start = (int(epoch), int(position))

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
        epoch, start = self.epoch, 0
        if self._start is not None and self._start[0] == epoch:
            start = self._start[1]
        self._start = None
        self.pass_epoch, self.pass_start = epoch, start
        return iter([(epoch, i) for i in self._order()[start:]])

    def __len__(self) -> int:
        return -(-self.size // self.num_replicas)


class ResumableLoader(DataLoader):
    """A DataLoader over an `EpochSampler` that knows where it is in the epoch: `state_dict`
    gives (epoch, batches consumed), `load_state_dict` makes the next pass over that epoch
    start at the first batch not consumed. `AudioDataModule` saves and restores this state with
    every checkpoint (Lightning also saves it in its loop state, a loader with
    `state_dict`/`load_state_dict` being "stateful" to it).

    Batches are counted as they are handed out; Lightning takes them one at a time when the
    loader has a length (no look-ahead), so the count is the number trained on.
    """

    sampler: EpochSampler

    def __iter__(self) -> Iterator[Any]:
        self._taken = 0
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._taken += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The epoch being consumed and how many of its batches were consumed."""
        sampler = self.sampler
        taken = getattr(self, "_taken", 0)
        return {
            "epoch": sampler.pass_epoch,
            "batches": sampler.pass_start // self.batch_size + taken,
            "batch_size": int(self.batch_size),
            "size": sampler.size,
            "num_replicas": sampler.num_replicas,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue `state`'s epoch after its consumed batches, or start the next epoch when
        all were consumed (same data, batch size and world size needed: otherwise the
        position would point at other clips)."""
        sampler = self.sampler
        now = {
            "batch_size": self.batch_size,
            "size": sampler.size,
            "num_replicas": sampler.num_replicas,
        }
        changed = [f"{k} {state[k]} -> {v}" for k, v in now.items() if state.get(k, v) != v]
        if changed:
            raise BadValueError(
                "cannot resume mid-epoch: the checkpoint's training loader differs from this "
                f"run's ({', '.join(changed)}; data.batch_size, the training clips and the "
                "number of devices must stay the same)"
            )
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        sampler.set_epoch(epoch)
        sampler.start_at(epoch, batches * self.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


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
        self.data_spec = dataset_spec(c.name)
        self.data_spec.check(c)
        if c.batch_size <= 0 or c.num_workers < 0:
            raise BadValueError(
                f"data.batch_size must be > 0 and data.num_workers >= 0, given "
                f"{c.batch_size} and {c.num_workers}"
            )
        self._datasets: dict[str, ClipDataset] = {}
        self._served: dict[str, Any] = {}
        self._train_sampler: EpochSampler | None = None
        self._train_loader: ResumableLoader | None = None
        self._resume_state: dict[str, int] | None = None  # see load_state_dict

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
        if self.data_spec.class_names is not None:
            return self.data_spec.class_names(self.cfg)
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
        return self.data_spec.split(c, split, **common)

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
            sampler.set_epoch(self._train_epoch(ds))
        workers = self.cfg.num_workers
        loader_class = ResumableLoader if split == "train" else DataLoader
        loader = loader_class(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )
        if isinstance(loader, ResumableLoader):
            self._train_loader = loader
            if self._resume_state is not None:
                loader.load_state_dict(self._resume_state)
                self._resume_state = None
        return loader

    def _train_epoch(self, ds: Any) -> int:
        """The epoch the training loader starts in: the trainer's (a resumed run starts in
        the epoch it continues) when one is fitting, else the dataset's."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            return int(trainer.fit_loop.epoch_progress.current.processed)
        return int(getattr(ds, "epoch", 0))

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def state_dict(self) -> dict[str, Any]:
        """Where training is in its epoch (saved by Lightning with every checkpoint)."""
        if self._train_loader is None:
            return {}
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next training loader continue where the checkpoint's stopped.

        Lightning restores the datamodule before anything asks for a loader (the optimizer's
        schedule may build one to count the steps, before the loops are restored), so the
        loader starts at the right epoch and batch whenever it is built. Ignored outside
        fitting (e.g. when `trainer.test` loads the best checkpoint).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.training:
            self._resume_state = state_dict.get("train_loader")

    def set_epoch(self, epoch: int) -> None:
        """Select the training epoch (mixtures, crops, augmentation, shuffling)."""
        if "train" in self._datasets:
            self._datasets["train"].set_epoch(epoch)
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(epoch)


def build_datamodule(data_cfg: DataConfig | DictConfig | dict) -> AudioDataModule:
    """The AudioDataModule of a recipe's `data` section."""
    return AudioDataModule(data_cfg)
