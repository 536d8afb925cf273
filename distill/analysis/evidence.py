"""Where a student finds its class evidence in time, without any attention head.

For students whose head is a global average pool followed by a linear layer (`forward_features`
gives the (B, C, [F,] T') map, `fc` the classifier, as in TC-ResNet), the predicted class's
score decomposes over time: logit_c = mean_t w_c . f_t. Its per-step terms (a class activation
map over time) show where the plain student looks, so it can be compared with the teacher's
attention and with the heads trained by temporal KD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.core.module import argmax_inside_span
from distill.errors import BadValueError


def class_activation(student: nn.Module, feats: Tensor) -> Tensor:
    """(B, T') contribution of each time step to the predicted class's logit."""
    fc = getattr(student, "fc", None)
    has_parts = hasattr(student, "forward_features") and hasattr(student, "forward_head")
    if not has_parts or not isinstance(fc, nn.Linear):
        raise TypeError(
            f"{type(student).__name__} has no global-pool + linear head (`forward_features`, "
            "`forward_head` and an `fc` nn.Linear): its evidence over time cannot be read this way"
        )
    fmap = student.forward_features(feats)
    predicted = student.forward_head(fmap).argmax(dim=1)
    if fmap.dim() == 4:
        fmap = fmap.mean(dim=2)
    if fmap.dim() != 3 or fmap.shape[1] != fc.in_features:
        raise BadValueError(f"feature map of shape {tuple(fmap.shape)} does not feed `fc` directly")
    return torch.einsum("bct,bc->bt", fmap, fc.weight[predicted])


@torch.no_grad()
def evidence_in_span(module: Any, loader: Any) -> dict[str, float]:
    """Fraction of clips (with a span) whose class-activation argmax lies inside the true span,
    and the number of clips counted, over a loader of the module's data."""
    was_training = module.student.training
    module.student.eval()
    inside, counted = 0.0, 0
    try:
        for batch in loader:
            if batch.get("spans") is None:
                raise BadValueError("the data has no spans: nothing to place the evidence in")
            cam = class_activation(module.student, module.features(batch["waveform"]))
            has = ~torch.isnan(batch["spans"][..., 0]).all(dim=-1)
            frac = argmax_inside_span(cam, batch["spans"], module.clip_seconds)
            if frac is not None:
                inside += float(frac) * int(has.sum())
                counted += int(has.sum())
    finally:
        module.student.train(was_training)
    return {
        "evidence_in_span": inside / counted if counted else float("nan"),
        "evidence_clips": counted,
    }


def checkpoint_evidence(checkpoint: str | Path, split: str = "test") -> dict[str, Any]:
    """Where the checkpoint's plain student finds its class evidence in time: the fraction of
    clips whose evidence peaks inside the true span."""
    from distill.analysis.evidence import evidence_in_span
    from distill.data import build_datamodule
    from distill.pipeline.artifacts import load_checkpoint_module

    module = load_checkpoint_module(checkpoint)
    loader = build_datamodule(module.cfg.data).dataloader(split)
    return {f"{split}/{k}": v for k, v in evidence_in_span(module, loader).items()}
