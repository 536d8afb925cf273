"""Building every cache the runs of a recipe read: the teacher cache and the feature cache."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from distill.caches.teacher_cache import TeacherCache, build_cache
from distill.core.teacher_source import check_class_names, load_teacher_for


def build_caches(
    cfg: DictConfig, teacher: bool, features: bool, rebuild: bool = False
) -> tuple[TeacherCache | None, Any]:
    """Build what runs of the recipe read and is missing (everything with `rebuild`): the
    teacher cache when `teacher`, the feature cache when `features` and data.cache_features.
    Returns (teacher cache or None, feature cache or None); the datamodule is built once."""
    features = features and bool(cfg.data.cache_features)
    if not teacher and not features:
        return None, None
    from distill.caches.feature_cache import attach_feature_cache
    from distill.data import build_datamodule
    from distill.data.frontend import build_frontend

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
