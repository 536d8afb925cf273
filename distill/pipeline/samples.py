"""Attention of teacher and student on a few test clips, saved for the report's plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.core.losses import LossInputs
from distill.files import atomic_path

SAMPLES_FILE = "attention_samples.npz"


def dump_attention_samples(module: Any, datamodule: Any, path: Path, n: int = 6) -> Path | None:
    """Write waveforms, true spans, labels, predictions, a_S and a_T of the first `n` test clips.

    Returns None (writing nothing) when neither a student head nor a teacher attention exists.
    """
    batch = next(iter(datamodule.dataloader("test")))
    batch = {k: v[:n] for k, v in batch.items()}
    module.eval()
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        feats = module.features(batch["waveform"])
        logits = module.student(feats)
        teacher = module._teacher_outputs(batch, "test") if module.teacher_source else {}
        if "temporal_kd" in module.aux.terms:
            inputs = LossInputs(
                logits=logits,
                target=batch["label"],
                time_features=module._tap.features() if module._tap is not None else None,
                student_attention=module._attention_tap.output if module._attention_tap else None,
            )
            a_s = module.aux.terms["temporal_kd"].student_distribution(inputs)
            arrays["student_attention"] = a_s.float().numpy()
        if teacher.get("teacher_attention") is not None:
            arrays["teacher_attention"] = teacher["teacher_attention"].float().cpu().numpy()
    if not arrays:
        return None
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # disk full: no partial file left
        np.savez_compressed(
            fh,
            waveform=batch["waveform"].numpy().astype(np.float16),
            spans=batch["spans"].numpy(),
            labels=batch["label"].numpy(),
            predictions=logits.argmax(-1).numpy(),
            clip_ids=np.array(batch["clip_id"]),
            class_names=np.array(module.class_names),
            clip_seconds=np.array(module.clip_seconds),
            **arrays,
        )
    return path
