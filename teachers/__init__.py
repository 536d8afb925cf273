"""Attention teachers: in-house spectrogram transformer, Hugging Face audio models, timm ViTs.

`create(kind, **kwargs)` builds one; `load_teacher(path)` rebuilds a saved one. Kinds are
registered with `@register_teacher(kind, ...)` beside each class (`available()` lists them); a
custom `Teacher` subclass is named by its dotted path. Saved forms:
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

from distill.teachers import (  # noqa: F401  (imported to register the built-in kinds)
    hf,
    spectrogram_transformer,
    timm_vit,
)
from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.registry import (
    TeacherSpec,
    available,
    kind_of_saved,
    register_teacher,
    spec,
)
from distill.teachers.rollout import attention_rollout, query_row

from distill.errors import BadValueError, MissingFileError

__all__ = [
    "Teacher",
    "TeacherOutput",
    "TeacherSpec",
    "attention_rollout",
    "available",
    "create",
    "load_teacher",
    "query_row",
    "register_teacher",
    "spec",
]


def _class_names(kwargs: dict) -> dict:
    if "num_classes" in kwargs:
        if "class_names" in kwargs:
            raise BadValueError("give either class_names or num_classes, not both")
        kwargs["class_names"] = [str(i) for i in range(int(kwargs.pop("num_classes")))]
    return kwargs


def create(kind: str, **kwargs) -> Teacher:
    """A teacher of `kind` (a registered kind or a Teacher class's dotted path).

    With `path`: the teacher saved there (Hugging Face-format kinds also take load options such
    as pooling, feature_extractor, class_names and rollout options; saved-folder kinds take
    none). Without: a new one from `class_names` (or `num_classes`) and the class's options:
    - "inhouse": `preset` (tiny | small | base, default base) plus SpectrogramTransformerConfig
      fields (width, depth, heads, patch_time, frontend, ...).
    - "timm": TimmViTConfig fields (model_name, patch_size, seconds, model_kwargs,
      pretrained_file, frontend, rollout options).
    - "hf": always needs `path` (a local directory or a cached hub id).
    """
    s = spec(kind)
    if "path" in kwargs:
        path = kwargs.pop("path")
        if kwargs and not s.hf_format:
            raise BadValueError(
                f"a saved teacher ({path}) takes no other arguments, got {sorted(kwargs)}; "
                "change rollout options through the loaded teacher's attributes"
            )
        return s.cls.from_pretrained(path, **kwargs)
    if not s.from_scratch:
        raise BadValueError(f"teacher kind {kind!r} needs path= ({s.where})")
    kwargs = _class_names(kwargs)
    if "class_names" not in kwargs:
        raise BadValueError(
            f"teacher kind {kind!r}: give class_names or num_classes for a new teacher, or "
            f"path= ({s.where})"
        )
    return s.cls.build(**kwargs)


def load_teacher(path: str | Path, **hf_options) -> Teacher:
    """Rebuild a teacher saved with `save_pretrained` (any kind), or load an HF directory."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise MissingFileError(f"{cfg_path} not found: {path} is not a saved teacher directory")
    kind = kind_of_saved(json.loads(cfg_path.read_text()), str(cfg_path))
    if hf_options and not spec(kind).hf_format:
        raise BadValueError(
            f"options {sorted(hf_options)} apply only to Hugging Face-format teachers, {path} "
            f"is {kind}"
        )
    return create(kind, path=str(path), **hf_options)
