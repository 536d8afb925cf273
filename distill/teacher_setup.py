"""Loading the recipe's teacher, its cache fingerprint, and building / attaching the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from distill.cache import TeacherCache, sha256_of_files, sha256_of_json, sha256_of_tensors

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


def fingerprint(cfg: DictConfig, teacher: Any) -> dict[str, str]:
    """What a cached teacher output depends on: weights, rollout, data manifest, crop/mixing."""
    root = Path(cfg.data.root)
    data = cfg.data
    return {
        "teacher": sha256_of_tensors(teacher.state_dict()),
        "rollout": sha256_of_json(
            {
                "options": teacher.rollout_options(),
                "class": type(teacher).__name__,
                "sample_rate": teacher.sample_rate,
            }
        ),
        "data": sha256_of_json(
            {
                "files": sha256_of_files(root / f for f in DATA_FILES),
                "name": data.name,
                "classes": data.classes,
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


def cache_dir(cfg: DictConfig) -> Path:
    """Where the recipe's teacher cache lives: beside the teacher, one folder per data setup."""
    name = f"{cfg.data.name}-{cfg.data.clip_seconds:g}s-seed{cfg.data.seed}"
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


def build_cache(
    cfg: DictConfig,
    teacher: Any,
    datamodule: Any,
    rebuild: bool = False,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> TeacherCache:
    """Run the teacher once over every clip (every training variant) and write the cache."""
    cache = TeacherCache(cache_dir(cfg), fingerprint(cfg, teacher))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher.to(device)
    for split in splits:
        if not rebuild and cache.has(split):
            print(f"teacher cache {split}: up to date in {cache.directory}")
            continue
        passes = _variant_epochs(cfg, datamodule, split)
        total = sum(len(datamodule.dataset(split)) for _ in passes)
        bar = tqdm(total=total, desc=f"teacher cache {split}", unit="clip")

        def batches(passes=passes, split=split, bar=bar):
            for epoch in passes:
                if epoch is not None:
                    datamodule.set_epoch(epoch)
                for batch in datamodule.dataloader(split, shuffle=False):
                    with torch.no_grad():
                        out = teacher(batch["waveform"].to(device))
                    bar.update(len(batch["clip_id"]))
                    yield list(batch["clip_id"]), out

        cache.write(split, batches(), total=total, with_hidden=cfg.losses.hint.weight > 0)
        bar.close()
    return cache


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
