"""What a cache's content depends on: the data files, the crop/mixing policy, the teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from distill.caches.records import sha256_of_files, sha256_of_json, sha256_of_tensors

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
