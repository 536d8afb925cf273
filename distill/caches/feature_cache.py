"""Student input features of fixed clips, computed once and memory-mapped (`data.cache_features`).

With fixed training mixtures (`data.train_variants=K`) every item the training loop can see is
known in advance: K variants per training clip and one per validation/test clip. Mixing and the
log-mel transform then cost one pass instead of one per epoch, and a training item becomes a
memory-mapped read. Records are `features` (F, T) float32 plus the item's label, spans, offset
and index; rows are ordered (variant, index). The cache sits in
`<data.feature_cache_dir or run_dir/feature_cache>/<data>-<seconds>s-seed<seed>-<hash>`, the hash
naming the set-up (bank, listing, crop/mixing, frontend: `setup_key`). It is checked against a
fingerprint of the data files' contents, the crop/mixing policy and the frontend: a missing
split is built, a stale one is refused naming the files that changed (`distill cache RECIPE
--rebuild` rebuilds it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from distill.caches.fingerprint import data_files, data_fingerprint, setup_key
from distill.caches.records import RecordCache, Rows, map_records, sha256_of_json
from distill.data.base import ClipDataset, collate
from distill.data.frontend import Frontend
from distill.distributed import barrier, distributed_rank
from distill.errors import BadValueError
from distill.files import lock_folder

SPLITS = ("train", "validation", "test")
LOCK_WAIT_SECONDS = 3600.0  # a build of a large bank takes minutes


class FeatureCache(RecordCache):
    """Per-split features of every fixed item (see the module docstring)."""

    what = "feature cache"
    build_hint = " (it is built by `distill fit` when data.cache_features=true)"
    rebuild_hint = (
        ": rebuild it with `distill cache RECIPE --rebuild`, delete the folder or set "
        "data.cache_features=false"
    )
    parts = ("data", "crop", "frontend")


def feature_fingerprint(cfg: DictConfig, files: dict[str, str] | None = None) -> dict[str, str]:
    """What cached features depend on: the data files (`files`: `data_files` of the recipe,
    computed when None), the crop/mixing policy and the frontend."""
    frontend = OmegaConf.to_container(cfg.frontend, resolve=True)
    return {**data_fingerprint(cfg, files), "frontend": sha256_of_json(frontend)}


def feature_cache_dir(cfg: DictConfig) -> Path:
    """The folder of the recipe's feature cache (one per data/frontend set-up)."""
    base = Path(cfg.data.feature_cache_dir or Path(cfg.run_dir) / "feature_cache")
    key = setup_key(cfg, frontend=OmegaConf.to_container(cfg.frontend, resolve=True))
    return base / f"{cfg.data.name}-{cfg.data.clip_seconds:g}s-seed{cfg.data.seed}-{key}"


def variant_draws(dataset: ClipDataset) -> list[int]:
    """The draws whose audio the cache must hold: [0] when the audio never changes, else the
    training variants 0..K-1; an error when training audio changes every epoch."""
    if not dataset.audio_is_fixed:
        raise BadValueError(
            "data.cache_features=true needs training audio that is fixed in advance, but it "
            "changes every epoch (on-the-fly mixing, random crops or waveform augmentation): set "
            "data.train_variants=K (K fixed variants per clip) or data.cache_features=false"
        )
    if dataset.draw(0)[0] == dataset.draw(1)[0]:
        return [0]
    return list(range(dataset.train_variants))


def _rows(dataset: ClipDataset, frontend: Frontend, draws: list[int], cfg: DictConfig) -> Rows:
    """(clip ids, arrays) per batch, in (variant, index) order."""
    order = [(d, i) for d in draws for i in range(len(dataset))]
    loader = DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        sampler=order,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG (SpecAugment) alone
    )
    label_dtype = np.float32 if dataset.task == "multi_label" else np.int64
    with tqdm(total=len(order), desc=f"feature cache {dataset.split}", unit="clip") as bar:
        for batch in loader:
            with torch.no_grad():
                feats = frontend(batch["waveform"].float())
            bar.update(len(batch["clip_id"]))
            yield (
                list(batch["clip_id"]),
                {
                    "features": feats.numpy().astype(np.float32),
                    "label": batch["label"].numpy().astype(label_dtype),
                    "spans": batch["spans"].numpy().astype(np.float32),
                    "offset": batch["offset"].numpy().astype(np.int64),
                    "index": batch["index"].numpy().astype(np.int64),
                },
            )


class CachedFeatures(Dataset):
    """A clip dataset's items with `features` read from the cache instead of `waveform`.

    Indexing is the base dataset's (int, or an ``(epoch, index)`` pair from the epoch sampler);
    other attributes (entries, class names, draws) are the base dataset's.
    """

    def __init__(self, base: ClipDataset, records_path: Path, clip_ids: list[str]) -> None:
        self.base = base
        self.records_path = Path(records_path)
        self.clip_ids = clip_ids
        self.draws = variant_draws(base)
        if len(clip_ids) != len(self.draws) * len(base):
            raise BadValueError(
                f"feature cache {self.records_path} holds {len(clip_ids)} clips, expected "
                f"{len(self.draws)} x {len(base)}: delete it to rebuild"
            )
        expected = [e.clip_id + base.draw(d)[1] for d in self.draws for e in base.entries]
        wrong = [k for k, (a, b) in enumerate(zip(clip_ids, expected)) if a != b]
        if wrong:
            k = wrong[0]
            raise BadValueError(
                f"feature cache {self.records_path} does not match the data listing ({len(wrong)} "
                f"rows differ, e.g. row {k} is {clip_ids[k]!r}, the data gives {expected[k]!r}): "
                "delete it to rebuild"
            )
        self._records: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:  # workers map the file themselves
        return {**self.__dict__, "_records": None}

    def __getattr__(self, name: str) -> Any:
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple | list):
            epoch, index = int(key[0]), int(key[1])
        else:
            epoch, index = self.base.epoch, int(key)
        if not 0 <= index < len(self.base):
            raise IndexError(f"index {index} out of range for {len(self.base)} clips")
        if self._records is None:
            self._records = map_records(self.records_path, "feature cache")
        draw = self.base.draw(epoch)[0]
        row = self.draws.index(draw) * len(self.base) + index
        rec = self._records[row]
        label = rec["label"]
        return {
            "features": torch.from_numpy(np.array(rec["features"])),
            "label": torch.from_numpy(np.array(label)) if label.ndim else int(label),
            "clip_id": self.clip_ids[row],
            "index": int(rec["index"]),
            "spans": torch.from_numpy(np.array(rec["spans"])),
            "offset": int(rec["offset"]),
        }


def _say(message: str) -> None:
    print(f"distill: {message}", file=sys.stderr, flush=True)


def attach_feature_cache(
    cfg: DictConfig,
    datamodule: Any,
    frontend: Frontend,
    splits: tuple[str, ...] = SPLITS,
    rebuild: bool = False,
) -> FeatureCache | None:
    """With `data.cache_features`, build what is missing (everything with `rebuild`) and let
    the datamodule's loaders serve cached features; None when the option is off. A stale split
    (data files, crop/mixing or frontend changed) is refused naming what changed. A build of
    the same cache by another run is waited for, then used; under DDP rank 0 builds, the others
    wait."""
    if not cfg.data.cache_features:
        return None
    files = data_files(cfg, datamodule)
    cache = FeatureCache(feature_cache_dir(cfg), feature_fingerprint(cfg, files), files=files)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    rank, world = distributed_rank(accelerator)
    for split in splits:
        dataset = datamodule.dataset(split)
        draws = variant_draws(dataset)
        if rank == 0:
            # another run building this cache: wait for it, then use what it wrote
            with lock_folder(cache.directory, cache.what, LOCK_WAIT_SECONDS, notify=_say):
                records, index = cache.paths(split)
                if rebuild or not (records.is_file() and index.is_file()):
                    total = len(draws) * len(dataset)
                    cache.write_rows(split, _rows(dataset, frontend, draws, cfg), total)
        barrier(world)
        index = cache.check(split)
        datamodule.serve(split, CachedFeatures(dataset, cache.paths(split)[0], index["clip_ids"]))
    return cache
