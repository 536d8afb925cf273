"""The headline task metric that picks checkpoints: accuracy for single-label, macro mAP for
multi-label. Every other test metric (confusion matrix, macro F1, AUROC, lwlrap, ...) is in
`distill.core.metric_report`."""

from __future__ import annotations

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MultilabelAveragePrecision

from distill.errors import BadValueError


class MacroAveragePrecision(MultilabelAveragePrecision):
    """Macro mAP over the float multi-hot targets the multi-label datasets yield."""

    def update(self, preds: Tensor, target: Tensor) -> None:
        if target.is_floating_point():
            if ((target != 0) & (target != 1)).any():
                raise BadValueError("multi-label targets for mAP must be 0/1 multi-hot vectors")
            target = target.long()
        super().update(preds, target)


def metric_name(task: str) -> str:
    """The logged name of the task's headline metric."""
    return "mAP" if task == "multi_label" else "acc"


def build_metric(task: str, num_classes: int) -> Metric:
    """Micro accuracy (single-label) or macro average precision (multi-label)."""
    if task == "multi_label":
        return MacroAveragePrecision(num_labels=num_classes, average="macro")
    return MulticlassAccuracy(num_classes=num_classes, average="micro")
