"""The teacher cache: teacher outputs, one memory-mapped file per split; building, attaching it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from distill.caches.fingerprint import data_files, fingerprint, setup_key
from distill.caches.records import FINGERPRINT_PARTS, RecordCache, Rows, StaleCacheError
from distill.core.losses.registry import loss_needs
from distill.data.base import collate
from distill.distributed import barrier, compute_device, distributed_rank
from distill.errors import BadValueError, MissingFileError
from distill.teachers.base import TeacherOutput


def cache_dir(cfg: DictConfig) -> Path:
    """Where the recipe's teacher cache lives: beside the teacher, one folder per data set-up,
    `<data>-<seconds>s-seed<seed>[-layers<k_..>]-<setup hash>`: the hash covers the bank, the
    listing and the crop/mixing settings (`setup_key`), so two set-ups never share a folder;
    caches of several rollout-layer choices sit side by side."""
    name = f"{cfg.data.name}-{cfg.data.clip_seconds:g}s-seed{cfg.data.seed}"
    if cfg.teacher.rollout_layers:
        name += "-layers" + "_".join(str(int(k)) for k in cfg.teacher.rollout_layers)
    return Path(cfg.teacher.path) / "cache" / f"{name}-{setup_key(cfg)}"


def teacher_cache_for(cfg: DictConfig, teacher: Any, datamodule: Any = None) -> TeacherCache:
    """The recipe's teacher cache, checked against the teacher and the data files as they
    are now (`datamodule`: the recipe's, built when None)."""
    files = data_files(cfg, datamodule)
    return TeacherCache(cache_dir(cfg), fingerprint(cfg, teacher, files), files=files)


def attach_teacher(module: Any, cfg: DictConfig, teacher: Any, datamodule: Any) -> None:
    """Give the module its teacher outputs: a verified cache, or the teacher run online."""
    if teacher is None or not module.aux.needs_teacher:
        return
    if not cfg.teacher.cache:
        module.set_teacher_source(teacher)
        return
    cache = teacher_cache_for(cfg, teacher, datamodule)
    for split in ("train", "val", "test"):
        cache.check(split)
    module.set_teacher_source(cache)


def build_cache(
    cfg: DictConfig,
    teacher: Any,
    datamodule: Any,
    rebuild: bool = False,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> TeacherCache:
    """Run the teacher once over every clip (every training variant) and write the cache.

    Under torchrun / an initialised process group each rank computes a shard of the clips and
    rank 0 merges them.
    """
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    rank, world = distributed_rank(accelerator)
    cache = teacher_cache_for(cfg, teacher, datamodule)
    device = compute_device(accelerator)
    teacher.to(device)
    for split in splits:
        if not rebuild and cache.has(split):
            if rank == 0:
                print(f"teacher cache {split}: up to date in {cache.directory}")
            continue
        passes = _variant_epochs(cfg, datamodule, split)
        size = len(datamodule.dataset(split))
        order = [(e if e is not None else 0, i) for e in passes for i in range(size)]
        mine = order[rank::world]
        bar = tqdm(
            total=len(mine),
            desc=f"teacher cache {split} [{rank}/{world}]",
            unit="clip",
            disable=rank != 0,
        )
        loader = DataLoader(
            datamodule.dataset(split),
            batch_size=cfg.data.batch_size,
            sampler=mine,
            collate_fn=collate,
            num_workers=cfg.data.num_workers,
        )

        def batches(loader=loader, bar=bar):
            for batch in loader:
                with torch.no_grad():
                    out = teacher(batch["waveform"].to(device))
                bar.update(len(batch["clip_id"]))
                yield list(batch["clip_id"]), out

        hidden = "hidden" in loss_needs(cfg.losses)
        if world == 1:
            cache.write(split, batches(), total=len(mine), with_hidden=hidden)
        else:
            cache.write(split, batches(), total=len(mine), with_hidden=hidden, shard=(rank, world))
            barrier(world)
            if rank == 0:
                cache.merge(split, world)
            barrier(world)
        bar.close()
    return cache


def _variant_epochs(cfg: DictConfig, datamodule: Any, split: str) -> list[int | None]:
    """Epochs whose training audio the cache must hold (one pass when the audio is fixed)."""
    dataset = datamodule.dataset(split)
    if not dataset.audio_is_fixed:
        raise BadValueError(
            "the training audio changes every epoch (on-the-fly mixing or augmentation), so a "
            "teacher cache cannot cover it: set data.train_variants=K (K fixed variants per clip, "
            "cached once) or teacher.cache=false (run the teacher online)"
        )
    if split != "train" or dataset.draw(0)[0] == dataset.draw(1)[0]:
        return [None]
    return list(range(cfg.data.train_variants))


def _teacher_arrays(out: object, with_hidden: bool) -> dict[str, np.ndarray]:
    arrays = {
        "logits": out.logits.detach().float().cpu().numpy(),
        "attention": out.attention.detach().float().cpu().numpy(),
    }
    if with_hidden:
        if out.hidden is None:
            raise BadValueError("the hint loss needs hidden states; the teacher gave none")
        arrays["hidden"] = out.hidden.detach().cpu().numpy().astype(np.float16)
    if getattr(out, "frame_logits", None) is not None:  # per-token class logits (losses.timed)
        arrays["frame_logits"] = out.frame_logits.detach().cpu().numpy().astype(np.float16)
    return arrays


class TeacherCache(RecordCache):
    """Teacher logits, temporal attention (and hidden states) per clip and split; as a
    `distill.core.teacher_source.TeacherSource` it serves them to a DistillModule by clip id."""

    what = "teacher cache"
    build_hint = " (build it with `distill cache RECIPE`)"
    rebuild_hint = ". Rebuild it with `distill cache RECIPE --rebuild`"
    parts = FINGERPRINT_PARTS

    def outputs(
        self, batch: dict[str, Any], split: str, device: torch.device | str
    ) -> TeacherOutput:
        """Cached teacher outputs of the batch's clips (by `clip_id`), in batch order."""
        return self.lookup(split, batch["clip_id"], device=device)

    def lookup(
        self, split: str, clip_ids: list[str], device: torch.device | str = "cpu"
    ) -> TeacherOutput:
        """Teacher outputs of the given clips, in order (no spans: the cache keeps none)."""
        records, index = self.open(split)
        if "position" not in index:
            index["position"] = {cid: i for i, cid in enumerate(index["clip_ids"])}
        try:
            rows = np.array([index["position"][c] for c in clip_ids])
        except KeyError as err:
            raise KeyError(
                f"clip {err.args[0]!r} is not in the teacher cache for split '{split}' "
                f"({self.directory}); with on-the-fly training mixtures set data.train_variants>0 "
                "so the cached variants cover every epoch, or set teacher.cache=false"
            ) from None
        batch = records[rows]
        hidden = None
        if "hidden" in batch.dtype.names:
            hidden = torch.from_numpy(np.ascontiguousarray(batch["hidden"])).float().to(device)
        frames = None
        if "frame_logits" in batch.dtype.names:
            frames = torch.from_numpy(np.ascontiguousarray(batch["frame_logits"])).float()
        return TeacherOutput(
            logits=torch.from_numpy(np.ascontiguousarray(batch["logits"])).to(device),
            attention=torch.from_numpy(np.ascontiguousarray(batch["attention"])).to(device),
            hidden=hidden,
            frame_logits=frames.to(device) if frames is not None else None,
        )

    def shard_paths(self, split: str, rank: int, world: int) -> tuple[Path, Path]:
        """(records file, index file) of one rank's shard of a split."""
        stem = f"{split}.shard{rank}of{world}"
        return self.directory / f"{stem}.npy", self.directory / f"{stem}.json"

    def merge(self, split: str, world: int) -> Path:
        """Concatenate the `world` shards of a split (rank order) into the split's cache."""
        shards = [self.shard_paths(split, r, world) for r in range(world)]
        missing = [str(idx) for _, idx in shards if not idx.is_file()]
        if missing:
            raise MissingFileError(f"teacher cache shards missing: {', '.join(missing)}")
        indices = [json.loads(idx.read_text()) for _, idx in shards]
        for index in indices:
            if index.get("fingerprint") != self.fingerprint:
                raise StaleCacheError(
                    f"teacher cache shard of split '{split}' has another "
                    "fingerprint than this build: rebuild all shards"
                )
        total = sum(len(index["clip_ids"]) for index in indices)

        def rows() -> Rows:
            for (records_path, _), index in zip(shards, indices):
                records = np.load(records_path, mmap_mode="r")
                for start in range(0, len(records), 1024):
                    chunk = records[start : start + 1024]
                    yield (
                        index["clip_ids"][start : start + 1024],
                        {name: np.array(chunk[name]) for name in records.dtype.names},
                    )

        with_hidden = indices[0].get("with_hidden", False)
        out = self.write_rows(split, rows(), total, with_hidden=with_hidden)
        for records_path, index_path in shards:
            index_path.unlink()
            records_path.unlink()
        return out

    def write(
        self,
        split: str,
        batches: Iterable[tuple[list[str], object]],
        total: int,
        with_hidden: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> Path:
        """Write teacher outputs `(clip_ids, TeacherOutput)` for `total` clips atomically; with
        `shard=(rank, world)` write that rank's shard, to be combined by `merge`."""
        rows = ((ids, _teacher_arrays(out, with_hidden)) for ids, out in batches)
        if shard is None:
            return self.write_rows(split, rows, total, with_hidden=with_hidden)
        records_path, index_path = self.shard_paths(split, *shard)
        self._write(records_path, index_path, rows, total, {"with_hidden": with_hidden}, split)
        return records_path
