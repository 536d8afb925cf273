"""Every metric of `evaluation_report` against values computed by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.classification import multilabel_ranking_average_precision

from distill.core.metric_report import d_prime, evaluation_report, lwlrap
from distill.core.metrics import build_metric
from distill.errors import BadValueError

# -- single-label -------------------------------------------------------------------------------

# 6 clips, 4 classes; the logits predict a, a, b, b, c, c for the true classes a, a, a, b, b, c.
# Class d has no clip and is never predicted.
NAMES = ["a", "b", "c", "d"]
PREDICTED = [0, 0, 1, 1, 2, 2]
TRUE = torch.tensor([0, 0, 0, 1, 1, 2])


def _single() -> dict:
    logits = torch.nn.functional.one_hot(torch.tensor(PREDICTED), 4).float() * 5.0
    return evaluation_report(logits, TRUE, "single_label", NAMES)


def test_confusion_matrix_counts_true_rows_against_predicted_columns() -> None:
    report = _single()
    # true a: 2 predicted a, 1 predicted b; true b: 1 b, 1 c; true c: 1 c; d: nothing
    assert report["confusion_matrix"] == {
        "classes": NAMES,
        "counts": [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]],
    }
    assert report["clips"] == 6 and report["task"] == "single_label"


def test_per_class_recall_precision_f1_and_support() -> None:
    rows = {r["class"]: r for r in _single()["per_class"]}
    # recall (= per-class accuracy) = diagonal / row sum: a 2/3, b 1/2, c 1/1
    # precision = diagonal / column sum (every column of a, b, c sums to 2): a 1, b 1/2, c 1/2
    # F1 = 2PR/(P+R): a 2(2/3)/(5/3) = 4/5, b 1/2, c 2(1/2)/(3/2) = 2/3
    expected = {
        "a": (3, 2 / 3, 1.0, 4 / 5),
        "b": (2, 1 / 2, 1 / 2, 1 / 2),
        "c": (1, 1.0, 1 / 2, 2 / 3),
    }
    for name, (support, recall, precision, f1) in expected.items():
        assert rows[name]["support"] == support
        assert rows[name]["recall"] == pytest.approx(recall, abs=1e-6)
        assert rows[name]["precision"] == pytest.approx(precision, abs=1e-6)
        assert rows[name]["f1"] == pytest.approx(f1, abs=1e-6)
    # no clip of d and none predicted as d: nothing to score
    assert rows["d"] == {"class": "d", "support": 0, "recall": None, "precision": None, "f1": None}


def test_single_label_scalars() -> None:
    scalars = _single()["scalars"]
    # accuracy: 4 of 6 on the diagonal
    assert scalars["acc"] == pytest.approx(4 / 6, abs=1e-6)
    # balanced accuracy: mean recall over the classes with clips, (2/3 + 1/2 + 1) / 3 = 13/18
    assert scalars["balanced_acc"] == pytest.approx(13 / 18, abs=1e-6)
    # macro F1 over a, b, c (d is neither true nor predicted): (4/5 + 1/2 + 2/3) / 3 = 59/90
    assert scalars["macro_f1"] == pytest.approx(59 / 90, abs=1e-6)


def test_balanced_accuracy_skips_a_predicted_class_without_clips() -> None:
    # true a, a, b; predicted a, d, b: d has no clip (recall undefined), but its column counts
    logits = torch.nn.functional.one_hot(torch.tensor([0, 3, 1]), 4).float()
    report = evaluation_report(logits, torch.tensor([0, 0, 1]), "single_label", NAMES)
    rows = {r["class"]: r for r in report["per_class"]}
    assert rows["d"]["recall"] is None and rows["d"]["precision"] == 0.0 and rows["d"]["f1"] == 0
    # recall a 1/2, b 1 -> balanced (1/2 + 1) / 2 = 3/4
    assert report["scalars"]["balanced_acc"] == pytest.approx(3 / 4)
    # F1 a: P 1, R 1/2 -> 2/3; b: 1; d: 0 (predicted once, never true) -> (2/3 + 1 + 0) / 3
    assert report["scalars"]["macro_f1"] == pytest.approx((2 / 3 + 1) / 3, abs=1e-6)


# -- multi-label --------------------------------------------------------------------------------

# 4 clips x 3 classes; clip 4 has no label.
SCORES = torch.tensor([
    [0.9, 0.2, 0.4],
    [0.3, 0.8, 0.1],
    [0.6, 0.5, 0.7],
    [0.15, 0.45, 0.25],
])  # fmt: skip
HOT = torch.tensor([[1.0, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]])


def _multi() -> dict:
    return evaluation_report(SCORES, HOT, "multi_label", ["x", "y", "z"])


def test_per_class_average_precision_and_auroc() -> None:
    rows = _multi()["per_class"]
    # x: scores 0.9+ 0.6+ 0.3 0.15 -> both positives first: AP 1, AUROC 1
    # y: 0.8+ above every negative: AP 1, AUROC 1
    # z: ranked 0.7+ 0.4 0.25 0.1+ -> AP (1/1 + 2/4) / 2 = 3/4; positive-over-negative pairs:
    #    0.7 beats 0.4 and 0.25, 0.1 beats neither -> AUROC 2/4
    assert [r["ap"] for r in rows] == pytest.approx([1.0, 1.0, 0.75])
    assert [r["auroc"] for r in rows] == pytest.approx([1.0, 1.0, 0.5])
    assert [r["support"] for r in rows] == [2, 1, 2]


def test_multi_label_map_micro_map_auroc_and_d_prime() -> None:
    scalars = _multi()["scalars"]
    # macro mAP (1 + 1 + 3/4) / 3 = 11/12, the training loop's headline metric on the same data
    assert scalars["mAP"] == pytest.approx(11 / 12, abs=1e-6)
    headline = build_metric("multi_label", 3)
    headline.update(SCORES, HOT)
    assert scalars["mAP"] == pytest.approx(float(headline.compute()), abs=1e-6)
    # micro mAP: the 12 (clip, class) scores ranked as one list, 5 positives:
    # 0.9+ 0.8+ 0.7+ 0.6+ 0.5 0.45 0.4 0.3 0.25 0.2 0.15 0.1+
    # AP = (1/5)(1 + 1 + 1 + 1) + (1/5)(5/12) = 4/5 + 1/12 = 53/60
    assert scalars["micro_mAP"] == pytest.approx(53 / 60, abs=1e-6)
    # macro AUROC (1 + 1 + 1/2) / 3 = 5/6; d' = sqrt(2) * Phi^-1(5/6) = 1.41421 * 0.96742 = 1.36814
    assert scalars["auroc"] == pytest.approx(5 / 6, abs=1e-6)
    assert scalars["d_prime"] == pytest.approx(1.36814, abs=1e-4)


def test_lwlrap_by_hand_and_unlike_torchmetrics_lrap() -> None:
    # per positive (clip, class): positives among the classes scored >= it / how many those are
    # clip 1 x (0.9, top): 1/1; clip 2 y (0.8, top): 1/1, z (0.1, third): 2 positives / 3 = 2/3
    # clip 3 z (0.7, top): 1/1, x (0.6, second): 2/2; clip 4 has no positive (no term)
    # lwlrap = (1 + 1 + 2/3 + 1 + 1) / 5 = 14/15; per class x 1, y 1, z (2/3 + 1) / 2 = 5/6
    report = _multi()
    assert report["scalars"]["lwlrap"] == pytest.approx(14 / 15, abs=1e-6)
    assert [r["lwlrap"] for r in report["per_class"]] == pytest.approx([1.0, 1.0, 5 / 6])
    # label-weighted: the per-class values weighted by positives (2, 1, 2) give the same number
    assert pytest.approx(14 / 15) == (2 * 1 + 1 * 1 + 2 * 5 / 6) / 5
    # torchmetrics' LRAP averages per clip and scores the empty clip 1: (1 + 5/6 + 1 + 1) / 4
    lrap = multilabel_ranking_average_precision(SCORES, HOT.long(), 3)
    assert float(lrap) == pytest.approx(23 / 24, abs=1e-6)


def test_lwlrap_ties_rank_pessimistically_and_chunks_agree() -> None:
    # one clip, the positive tied with a negative: 2 classes scored >= 0.5, 1 positive -> 1/2
    overall, per_class = lwlrap(torch.tensor([[0.5, 0.5, 0.1]]), torch.tensor([[1, 0, 0]]))
    assert overall == pytest.approx(0.5)
    assert per_class[0] == pytest.approx(0.5) and per_class[1:].isnan().all()
    # no positive at all: undefined
    assert lwlrap(torch.rand(3, 4), torch.zeros(3, 4))[0] is None
    # many clips (several chunks) give the mean of the clips' own values
    scores = SCORES.repeat(200, 1)
    assert lwlrap(scores, HOT.repeat(200, 1))[0] == pytest.approx(14 / 15, abs=1e-6)


def test_classes_a_test_set_cannot_score_are_none() -> None:
    # class y has no positive (AP and AUROC undefined), class z no negative (AUROC undefined)
    hot = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 0, 1]])
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.3, 0.8], [0.7, 0.2, 0.6]])
    report = evaluation_report(scores, hot, "multi_label", ["x", "y", "z"])
    rows = report["per_class"]
    assert [r["ap"] for r in rows] == [1.0, None, 1.0]
    assert [r["auroc"] for r in rows] == [1.0, None, None]
    # macro AUROC over x only: 1, where d' is infinite -> None
    assert report["scalars"]["auroc"] == 1.0 and report["scalars"]["d_prime"] is None


def test_d_prime_is_the_gaussian_separation() -> None:
    # AUROC 0.5: no separation; Phi(1) = 0.8413447: d' = sqrt(2)
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(0.8413447461) == pytest.approx(math.sqrt(2), abs=1e-6)
    assert d_prime(1.0) is None and d_prime(0.0) is None


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(BadValueError, match="do not match 3 class names"):
        evaluation_report(torch.rand(2, 4), torch.tensor([0, 1]), "single_label", ["a", "b", "c"])
    with pytest.raises(BadValueError, match="0/1 multi-hot"):
        evaluation_report(torch.rand(2, 2), torch.full((2, 2), 0.5), "multi_label", ["a", "b"])
    with pytest.raises(BadValueError, match="lie in 0..1"):
        evaluation_report(torch.rand(2, 2), torch.tensor([0, 2]), "single_label", ["a", "b"])
    with pytest.raises(BadValueError, match="task 'regression'"):
        evaluation_report(torch.rand(2, 2), torch.tensor([0, 1]), "regression", ["a", "b"])
