"""Attention teachers: in-house spectrogram transformer, Hugging Face audio models, timm ViTs.

`create(kind, **kwargs)` builds one; `load_teacher(path)` rebuilds a saved one. Saved forms:
- inhouse / timm: our `config.json` (`{"teacher_kind": ..., "config": {...}}`) and
  `model.safetensors`, written by `teacher.save_pretrained(dir)`.
- hf: a Hugging Face `save_pretrained` directory (config.json with `model_type`, weights,
  preprocessor_config.json) plus our optional `teacher.json` with pooling and rollout options.
  Any local HF audio-classifier directory, or a hub id already in the local cache, loads with
  `create("hf", path=...)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.rollout import attention_rollout, query_row

from distill.errors import BadValueError, MissingFileError

KINDS = ("inhouse", "hf", "timm")

__all__ = [
    "KINDS",
    "Teacher",
    "TeacherOutput",
    "attention_rollout",
    "create",
    "load_teacher",
    "query_row",
]


def _class_names(kwargs: dict) -> dict:
    if "num_classes" in kwargs:
        if "class_names" in kwargs:
            raise BadValueError("give either class_names or num_classes, not both")
        kwargs["class_names"] = [str(i) for i in range(int(kwargs.pop("num_classes")))]
    return kwargs


def create(kind: str, **kwargs) -> Teacher:
    """A teacher of `kind`.

    - "inhouse": `preset` (tiny | small | base, default base) plus SpectrogramTransformerConfig
      fields (class_names or num_classes, width, depth, heads, patch_time, frontend, ...); or
      `path` of a saved in-house teacher.
    - "hf": `path` (local directory or cached hub id), optional `pooling`, `feature_extractor`,
      rollout options (head_fusion, layers, query, residual).
    - "timm": TimmViTConfig fields (class_names or num_classes, model_name, patch_size, seconds,
      model_kwargs, pretrained_file, frontend, rollout options); or `path` of a saved one.
    """
    if kind == "inhouse":
        from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher

        if "path" in kwargs:
            return _from_path(SpectrogramTransformerTeacher, kwargs)
        return SpectrogramTransformerTeacher.from_preset(
            kwargs.pop("preset", "base"), **_class_names(kwargs)
        )
    if kind == "hf":
        from distill.teachers.hf import HFTeacher

        if "path" not in kwargs:
            raise BadValueError(
                "teacher kind 'hf' needs path= (a local directory or a cached hub id)"
            )
        return HFTeacher.from_pretrained(kwargs.pop("path"), **kwargs)
    if kind == "timm":
        from distill.teachers.timm_vit import TimmViTConfig, TimmViTTeacher

        if "path" in kwargs:
            return _from_path(TimmViTTeacher, kwargs)
        return TimmViTTeacher(TimmViTConfig.from_dict(_class_names(kwargs)))
    raise BadValueError(f"unknown teacher kind {kind!r}; valid kinds: {list(KINDS)}")


def _from_path(cls, kwargs: dict) -> Teacher:
    path = kwargs.pop("path")
    if kwargs:
        raise BadValueError(
            f"a saved teacher ({path}) takes no other arguments, got {sorted(kwargs)}; "
            "change rollout options through the loaded teacher's attributes"
        )
    return cls.from_pretrained(path)


def load_teacher(path: str | Path, **hf_options) -> Teacher:
    """Rebuild a teacher saved with `save_pretrained` (any kind), or load an HF directory."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise MissingFileError(f"{cfg_path} not found: {path} is not a saved teacher directory")
    meta = json.loads(cfg_path.read_text())
    kind = meta.get("teacher_kind")
    if kind is None and "model_type" in meta:
        kind = "hf"
    if kind not in KINDS:
        raise BadValueError(
            f"{cfg_path}: cannot tell the teacher kind (teacher_kind {kind!r}, no model_type); "
            f"valid kinds: {list(KINDS)}"
        )
    if kind != "hf" and hf_options:
        raise BadValueError(
            f"options {sorted(hf_options)} apply only to hf teachers, {path} is {kind}"
        )
    return create(kind, path=str(path), **hf_options)
