"""Every test metric of a classifier, from its stacked logits and targets (docs/metrics.md).

Single-label: micro accuracy, balanced accuracy, macro F1, per-class recall (= per-class
accuracy), precision and F1, and the confusion matrix. Multi-label: macro mAP (the headline),
micro mAP, macro AUROC and its d-prime, lwlrap, and per-class AP, AUROC and lwlrap. Values a
test set cannot define (a class without clips, AUROC of a class without negatives) are None.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multilabel_auroc,
    multilabel_average_precision,
)

from distill.errors import BadValueError

SINGLE_LABEL_SCALARS = ("acc", "balanced_acc", "macro_f1")
MULTI_LABEL_SCALARS = ("mAP", "micro_mAP", "auroc", "d_prime", "lwlrap")
DECIMALS = 6  # of the reported values (float32 noise beyond)
LWLRAP_CHUNK = 256  # clips per step of the (clips, K, K) rank comparison


def evaluation_report(
    logits: Tensor, target: Tensor, task: str, class_names: list[str]
) -> dict[str, Any]:
    """All metrics of `task` ("single_label" or "multi_label") as plain JSON values:
    {task, clips, scalars, per_class[, confusion_matrix]}."""
    k = len(class_names)
    if k < 2:
        raise BadValueError(f"metrics: need two classes or more, got {k}")
    if logits.ndim != 2 or logits.shape[1] != k:
        raise BadValueError(
            f"metrics: logits of shape {tuple(logits.shape)} do not match {k} class names"
        )
    if len(target) != len(logits):
        raise BadValueError(f"metrics: {len(logits)} rows of logits but {len(target)} targets")
    logits = logits.detach().float().cpu()
    target = target.detach().cpu()
    if task == "multi_label":
        scalars, per_class, extra = _multi_label(logits, _multi_hot(target, k), class_names)
    elif task == "single_label":
        scalars, per_class, extra = _single_label(logits, _labels(target, k), class_names)
    else:
        raise BadValueError(f"metrics: task {task!r}, expected single_label or multi_label")
    return {"task": task, "clips": len(logits), "scalars": scalars, "per_class": per_class, **extra}


def _labels(target: Tensor, k: int) -> Tensor:
    if target.ndim != 1 or target.is_floating_point():
        raise BadValueError(f"single-label targets must be class indices, got {target.dtype}")
    if len(target) and (target.min() < 0 or target.max() >= k):
        raise BadValueError(f"single-label targets must lie in 0..{k - 1}")
    return target.long()


def _multi_hot(target: Tensor, k: int) -> Tensor:
    if target.ndim != 2 or target.shape[1] != k or ((target != 0) & (target != 1)).any():
        raise BadValueError(f"multi-label targets must be 0/1 multi-hot vectors of {k} classes")
    return target.long()


def _value(x: Tensor | float, defined: bool = True) -> float | None:
    """A float for JSON (6 decimals); None where undefined or not finite."""
    value = float(x)
    return round(value, DECIMALS) if defined and math.isfinite(value) else None


def _single_label(
    logits: Tensor, target: Tensor, names: list[str]
) -> tuple[dict[str, float | None], list[dict[str, Any]], dict[str, Any]]:
    """Scalars, per-class rows and the confusion matrix of a single-label classifier."""
    k = len(names)
    matrix = multiclass_confusion_matrix(logits, target, k)  # rows: true, columns: predicted
    support, predicted = matrix.sum(1), matrix.sum(0)
    recall = multiclass_recall(logits, target, k, average=None)
    precision = multiclass_precision(logits, target, k, average=None)
    f1 = multiclass_f1_score(logits, target, k, average=None)
    present = support > 0
    scalars = {
        "acc": _value(multiclass_accuracy(logits, target, k, average="micro")),
        "balanced_acc": _value(recall[present].mean(), bool(present.any())),
        "macro_f1": _value(multiclass_f1_score(logits, target, k, average="macro")),
    }
    per_class = [
        {
            "class": name,
            "support": int(support[i]),
            "recall": _value(recall[i], bool(support[i] > 0)),
            "precision": _value(precision[i], bool(predicted[i] > 0)),
            "f1": _value(f1[i], bool(support[i] + predicted[i] > 0)),
        }
        for i, name in enumerate(names)
    ]
    confusion = {"classes": list(names), "counts": matrix.tolist()}
    return scalars, per_class, {"confusion_matrix": confusion}


def _multi_label(
    scores: Tensor, target: Tensor, names: list[str]
) -> tuple[dict[str, float | None], list[dict[str, Any]], dict[str, Any]]:
    """Scalars and per-class rows of a multi-label classifier."""
    k = len(names)
    positives = target.sum(0)
    negatives = len(target) - positives
    ap = multilabel_average_precision(scores, target, k, average=None)
    auroc = torch.full((k,), float("nan"))
    scored = (positives > 0) & (negatives > 0)  # AUROC needs both
    idx = scored.nonzero().flatten()
    if len(idx) == 1:  # torchmetrics' multilabel functions need two labels or more
        auroc[idx] = binary_auroc(scores[:, idx[0]], target[:, idx[0]])
    elif len(idx) > 1:
        auroc[idx] = multilabel_auroc(scores[:, idx], target[:, idx], len(idx), average=None)
    macro_auroc = float(auroc[scored].mean()) if scored.any() else None
    separation = None if macro_auroc is None else d_prime(macro_auroc)
    any_positive = bool(positives.sum() > 0)
    overall_lwlrap, class_lwlrap = lwlrap(scores, target)
    scalars = {
        "mAP": _value(ap.mean()),  # torchmetrics' macro mAP: a class without positives counts 0
        "micro_mAP": _value(multilabel_average_precision(scores, target, k, average="micro"))
        if any_positive
        else None,
        "auroc": None if macro_auroc is None else _value(macro_auroc),
        "d_prime": None if separation is None else _value(separation),
        "lwlrap": overall_lwlrap,
    }
    per_class = [
        {
            "class": name,
            "support": int(positives[i]),
            "ap": _value(ap[i], bool(positives[i] > 0)),
            "auroc": _value(auroc[i], bool(scored[i])),
            "lwlrap": _value(class_lwlrap[i], bool(positives[i] > 0)),
        }
        for i, name in enumerate(names)
    ]
    return scalars, per_class, {}


def d_prime(auroc: float) -> float | None:
    """d' = sqrt(2) * Phi^-1(AUROC), the separation of two unit-variance Gaussians with that
    AUROC (as the AudioSet papers report it); None at AUROC 0 or 1, where it is infinite."""
    if not 0.0 < auroc < 1.0:
        return None
    return math.sqrt(2.0) * NormalDist().inv_cdf(auroc)


def lwlrap(scores: Tensor, target: Tensor) -> tuple[float | None, Tensor]:
    """Label-weighted label-ranking average precision (Fonseca et al., DCASE 2019 task 2) and
    its per-class values (NaN for a class without positives). For every positive (clip i,
    class j): the share of positive classes among the classes of clip i scored >= s_ij; lwlrap
    is the mean over all such pairs (each class weighted by its number of positives)."""
    positive = target.bool()
    sums = torch.zeros(scores.shape[1], dtype=torch.float64)
    for start in range(0, len(scores), LWLRAP_CHUNK):
        s = scores[start : start + LWLRAP_CHUNK]
        p = positive[start : start + LWLRAP_CHUNK]
        at_or_above = s.unsqueeze(1) >= s.unsqueeze(2)  # [i, j, l]: s_il >= s_ij
        rank = at_or_above.sum(2)
        hits = (at_or_above & p.unsqueeze(1)).sum(2)
        sums += torch.where(p, hits.double() / rank, 0.0).sum(0)
    counts = positive.sum(0).double()
    per_class = sums / counts  # NaN where counts == 0
    total = float(counts.sum())
    return (_value(float(sums.sum()) / total) if total else None), per_class
