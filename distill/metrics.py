"""Task metrics: accuracy for single-label, macro mAP for multi-label."""

from __future__ import annotations

from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MultilabelAveragePrecision


def metric_name(task: str) -> str:
    """The logged name of the task's headline metric."""
    return "mAP" if task == "multi_label" else "acc"


def build_metric(task: str, num_classes: int) -> Metric:
    """Micro accuracy (single-label) or macro average precision (multi-label)."""
    if task == "multi_label":
        return MultilabelAveragePrecision(num_labels=num_classes, average="macro")
    return MulticlassAccuracy(num_classes=num_classes, average="micro")
