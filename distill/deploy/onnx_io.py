"""Where a run's checkpoint, QAT and export files live, and loading them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.errors import BadValueError


def export_float(
    student: nn.Module, path: str | Path, n_features: int, frames: int, opset: int | None = None
) -> Path:
    """Write the bare student as ONNX (features (B, F, T) -> logits; batch and time dynamic) at
    `opset` (default: the recipe default, `DEFAULT_OPSET`)."""
    from distill.teachers.export import DEFAULT_OPSET, legacy_onnx_export

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    student = student.eval()
    if any(m._forward_hooks or m._forward_pre_hooks for m in student.modules()):
        raise RuntimeError("refusing to export a student that still carries forward hooks")
    example = torch.zeros(2, n_features, frames)
    legacy_onnx_export(
        student,
        (example,),
        path,
        DEFAULT_OPSET if opset is None else opset,
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}},
    )
    return path


def split_features(module: Any, split: str, limit_batches: int | None = None):
    """(features list of (B, F, T) arrays, labels array) of a split, via the module's frontend."""
    from distill.data import build_datamodule

    datamodule = build_datamodule(module.cfg.data)
    feats, labels = [], []
    with torch.no_grad():
        for i, batch in enumerate(datamodule.dataloader(split, shuffle=False)):
            if limit_batches is not None and i >= limit_batches:
                break
            feats.append(module.features(batch["waveform"]).numpy().astype(np.float32))
            labels.append(batch["label"].numpy())
    if not feats:
        raise BadValueError(f"split {split!r} of {module.cfg.data.root} yielded no batches")
    return feats, np.concatenate(labels)


def run_onnx(path: str | Path, feats: list[np.ndarray], threads: int = 1) -> np.ndarray:
    """Logits of an ONNX student over feature batches."""
    from distill.cost import session

    sess = session(path, threads)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: f})[0] for f in feats])


def run_torch(model: nn.Module, feats: list[np.ndarray]) -> np.ndarray:
    """Logits of a torch student over feature batches."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(f)).numpy() for f in feats])
