"""What a cache's content depends on: the data files, the crop/mixing policy, the teacher.

Two things are kept apart:
- the *setup* (`setup_key`): which bank (the data root's absolute path), data set, classes,
  limits and crop/mixing settings (and, for features, the frontend). It names the cache
  folder, so two set-ups never share one;
- the *content*: the fingerprint parts `data` (the content hash of every file the data's clips
  depend on, `data_files`, plus the listing settings), `crop` (the crop/mixing policy) and, for
  the teacher cache, `teacher` and `rollout`. A cache whose parts differ from the current ones
  is stale, and the error names the files that changed, were removed or were added (the cache
  keeps the per-file hashes it was built from).

File hashes are computed once per file version and remembered in the data root's file index
(`distill.data.file_index`), so a later run only `stat`s the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from distill.caches.records import sha256_of_json, sha256_of_tensors
from distill.data.base import SPLITS
from distill.data.file_index import FileIndex

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
#: how a clip's random draws are seeded: bumped when that changes, so older caches are stale
MIXING = "clip-id-v1"


def data_files(cfg: DictConfig, datamodule: Any = None) -> dict[str, str]:
    """Content hash of every file the data's clips depend on, by path (relative to data.root
    when inside it): the metadata files (DATA_FILES) and every file the three splits read
    (clips and noise, `ClipDataset.source_files`). `datamodule` is the recipe's (built when
    None)."""
    if datamodule is None:
        from distill.data import build_datamodule

        datamodule = build_datamodule(cfg.data)
    root = Path(cfg.data.root)
    paths = {str(root / name) for name in DATA_FILES if (root / name).is_file()}
    for split in SPLITS:
        paths.update(datamodule.dataset(split).source_files())
    if not paths:
        return {}
    index = FileIndex(root)
    hashes = index.sha256s(sorted(paths))
    index.save()
    return {index.key(path): digest for path, digest in sorted(hashes.items())}


def crop_settings(cfg: DictConfig) -> dict[str, Any]:
    """The crop/mixing settings of a recipe's data section."""
    data = cfg.data
    return {
        "crop": data.crop,
        "clip_seconds": data.clip_seconds,
        "rate": data.sample_rate,
        "snr_db": list(data.snr_db),
        "seed": data.seed,
        "variants": data.train_variants,
        "augment": OmegaConf.to_container(data.augment, resolve=True),
        "mixing": MIXING,
    }


def listing_settings(cfg: DictConfig) -> dict[str, Any]:
    """The settings that choose which clips a recipe's data section lists."""
    data = cfg.data
    return {
        "name": data.name,
        "classes": OmegaConf.to_container(data.classes)
        if OmegaConf.is_config(data.classes)
        else data.classes,
        "unknown_ratio": data.unknown_ratio,
        "limit_train": data.limit_train,
        "limit_eval": data.limit_eval,
    }


def data_fingerprint(cfg: DictConfig, files: dict[str, str] | None = None) -> dict[str, str]:
    """The `data` and `crop` parts: what a clip's audio depends on. `files` is `data_files`
    of the recipe (computed when None)."""
    files = data_files(cfg) if files is None else files
    return {
        "data": sha256_of_json({"files": sha256_of_json(files), **listing_settings(cfg)}),
        "crop": sha256_of_json(crop_settings(cfg)),
    }


def setup_key(cfg: DictConfig, **extra: Any) -> str:
    """8 hex digits naming a data set-up: the bank's absolute path, the listing and crop/mixing
    settings, and `extra` (e.g. the frontend); not the files' content."""
    bank = os.path.abspath(str(cfg.data.root))
    return sha256_of_json({"bank": bank, **listing_settings(cfg), **crop_settings(cfg), **extra})[
        :8
    ]


def fingerprint(
    cfg: DictConfig, teacher: Any, files: dict[str, str] | None = None
) -> dict[str, str]:
    """What a cached teacher output depends on: weights, rollout, data files, crop/mixing."""
    return {
        "teacher": sha256_of_tensors(teacher.state_dict()),
        "rollout": sha256_of_json(
            {
                "options": teacher.rollout_options(),
                "class": type(teacher).__name__,
                "sample_rate": teacher.sample_rate,
            }
        ),
        **data_fingerprint(cfg, files),
    }
