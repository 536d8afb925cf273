"""Loading the recipe's teacher, its cache fingerprint, and building / attaching the cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from distill.cache import TeacherCache, sha256_of_files, sha256_of_json, sha256_of_tensors
from distill.data.base import collate

DATA_FILES = (
    "dataset.json",
    "manifest.csv",
    "validation_list.txt",
    "testing_list.txt",
    "noise_splits.csv",
    "events_manifest.csv",
    "labels.csv",
    "FSD50K.ground_truth/dev.csv",
    "FSD50K.ground_truth/eval.csv",
    "FSD50K.ground_truth/vocabulary.csv",
)


def load_teacher_for(cfg: DictConfig) -> Any:
    """The recipe's frozen teacher, or None for teacher.kind=none."""
    if cfg.teacher.kind == "none":
        return None
    import teachers

    if not cfg.teacher.path:
        raise ValueError(
            f"teacher.kind={cfg.teacher.kind} needs teacher.path (a saved teacher directory; "
            "train one with `distill teach RECIPE`)"
        )
    path = Path(cfg.teacher.path)
    if cfg.teacher.kind in ("inhouse", "timm") and not path.is_dir():
        raise FileNotFoundError(
            f"teacher.path {path} does not exist: train the teacher first with "
            f"`distill teach RECIPE` or point teacher.path at a saved teacher"
        )
    options = OmegaConf.to_container(cfg.teacher.kwargs, resolve=True) if cfg.teacher.kwargs else {}
    if cfg.teacher.kind == "hf":
        teacher = teachers.create("hf", path=str(path), **options)
    else:
        teacher = teachers.load_teacher(path)
    teacher.head_fusion = cfg.teacher.head_fusion
    teacher.layers = list(cfg.teacher.rollout_layers) if cfg.teacher.rollout_layers else None
    return teacher.freeze()


def check_class_names(teacher_names: list[str], data_names: list[str], where: Any) -> None:
    """Refuse a teacher trained on another class list (order matters for logit KD)."""
    if list(teacher_names) != list(data_names):
        raise ValueError(
            f"teacher {where} was trained on classes {list(teacher_names)} but the data has "
            f"{list(data_names)}: logit KD needs the same classes in the same order"
        )


def data_fingerprint(cfg: DictConfig) -> dict[str, str]:
    """What a clip's audio depends on: the data files and listing, and the crop/mixing policy."""
    root = Path(cfg.data.root)
    data = cfg.data
    return {
        "data": sha256_of_json(
            {
                "files": sha256_of_files(root / f for f in DATA_FILES),
                "name": data.name,
                "classes": data.classes,
                "unknown_ratio": data.unknown_ratio,
                "limit_train": data.limit_train,
                "limit_eval": data.limit_eval,
            }
        ),
        "crop": sha256_of_json(
            {
                "crop": data.crop,
                "clip_seconds": data.clip_seconds,
                "rate": data.sample_rate,
                "snr_db": list(data.snr_db),
                "seed": data.seed,
                "variants": data.train_variants,
                "augment": OmegaConf.to_container(data.augment, resolve=True),
            }
        ),
    }


def fingerprint(cfg: DictConfig, teacher: Any) -> dict[str, str]:
    """What a cached teacher output depends on: weights, rollout, data manifest, crop/mixing."""
    return {
        "teacher": sha256_of_tensors(teacher.state_dict()),
        "rollout": sha256_of_json(
            {
                "options": teacher.rollout_options(),
                "class": type(teacher).__name__,
                "sample_rate": teacher.sample_rate,
            }
        ),
        **data_fingerprint(cfg),
    }


def cache_dir(cfg: DictConfig) -> Path:
    """Where the recipe's teacher cache lives: beside the teacher, one folder per data setup
    (and per choice of rollout layers, so caches of several rollouts can sit side by side)."""
    name = f"{cfg.data.name}-{cfg.data.clip_seconds:g}s-seed{cfg.data.seed}"
    if cfg.teacher.rollout_layers:
        name += "-layers" + "_".join(str(int(k)) for k in cfg.teacher.rollout_layers)
    return Path(cfg.teacher.path) / "cache" / name


def attach_teacher(module: Any, cfg: DictConfig, teacher: Any, datamodule: Any) -> None:
    """Give the module its teacher outputs: a verified cache, or the teacher run online."""
    if teacher is None or not module.aux.needs_teacher:
        return
    if not cfg.teacher.cache:
        module.set_teacher_source(teacher)
        return
    cache = TeacherCache(cache_dir(cfg), fingerprint(cfg, teacher))
    for split in ("train", "val", "test"):
        cache.check(split)
    module.set_teacher_source(cache)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size): from an initialised process group, or torchrun's environment (then
    the group is initialised here: gloo on CPU, nccl on CUDA); (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier(world: int) -> None:
    """Wait for every rank (no-op for a single process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


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
    rank, world = distributed_rank()
    cache = TeacherCache(cache_dir(cfg), fingerprint(cfg, teacher))
    if torch.cuda.is_available():
        device = torch.device("cuda", rank % torch.cuda.device_count())
    else:
        device = torch.device("cpu")
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

        hidden = cfg.losses.hint.weight > 0
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


def build_caches(
    cfg: DictConfig, teacher: bool, features: bool, rebuild: bool = False
) -> tuple[TeacherCache | None, Any]:
    """Build what runs of the recipe read and is missing (everything with `rebuild`): the
    teacher cache when `teacher`, the feature cache when `features` and data.cache_features.
    Returns (teacher cache or None, feature cache or None); the datamodule is built once."""
    features = features and bool(cfg.data.cache_features)
    if not teacher and not features:
        return None, None
    from distill.data import build_datamodule
    from distill.data.frontend import build_frontend
    from distill.feature_cache import attach_feature_cache

    datamodule = build_datamodule(cfg.data)
    teacher_cache = None
    if teacher:
        model = load_teacher_for(cfg)
        check_class_names(model.class_names, datamodule.class_names, cfg.teacher.path)
        teacher_cache = build_cache(cfg, model, datamodule, rebuild=rebuild)
    feature_cache = None
    if features:
        feature_cache = attach_feature_cache(
            cfg, datamodule, build_frontend(cfg.frontend), rebuild=rebuild
        )
    return teacher_cache, feature_cache


def _variant_epochs(cfg: DictConfig, datamodule: Any, split: str) -> list[int | None]:
    """Epochs whose training audio the cache must hold (one pass when the audio is fixed)."""
    dataset = datamodule.dataset(split)
    if not dataset.audio_is_fixed:
        raise ValueError(
            "the training audio changes every epoch (on-the-fly mixing or augmentation), so a "
            "teacher cache cannot cover it: set data.train_variants=K (K fixed variants per clip, "
            "cached once) or teacher.cache=false (run the teacher online)"
        )
    if split != "train" or dataset.draw(0)[0] == dataset.draw(1)[0]:
        return [None]
    return list(range(cfg.data.train_variants))
