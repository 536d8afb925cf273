"""Each loss term against values worked out by hand on small tensors."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from distill.config.schema import LossesConfig
from distill.core.losses import (
    LogitKD,
    LossInputs,
    TaskLoss,
    TemporalAttentionKD,
    TemporalAttentionTransfer,
    TimeAlignedHint,
    WeightedLosses,
    resample_distribution,
    sharpen,
    span_target,
)


def inputs(**kw) -> LossInputs:
    kw.setdefault("logits", torch.zeros(1, 2))
    kw.setdefault("target", torch.tensor([0]))
    return LossInputs(**kw)


def test_task_cross_entropy_and_bce() -> None:
    ce = TaskLoss("single_label")(inputs(logits=torch.tensor([[math.log(3.0), 0.0]])))
    assert ce.item() == pytest.approx(-math.log(0.75))
    bce = TaskLoss("multi_label")(
        inputs(logits=torch.zeros(1, 2), target=torch.tensor([[1.0, 0.0]]))
    )
    assert bce.item() == pytest.approx(math.log(2.0))


def test_logit_kd_single_label_t1_and_t2() -> None:
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> (0.75, 0.25); student (0.5, 0.5)
    kd1 = LogitKD("single_label", temperature=1.0)(inputs(teacher_logits=teacher))
    assert kd1.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)
    # T=2: teacher softmax(ln3/2, 0) = (sqrt3, 1)/(sqrt3+1); result scaled by T^2 = 4
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5))
    kd2 = LogitKD("single_label", temperature=2.0)(inputs(teacher_logits=teacher))
    assert kd2.item() == pytest.approx(expected, abs=1e-6)


def test_logit_kd_multi_label_uses_sigmoid_targets() -> None:
    kd = LogitKD("multi_label", temperature=1.0)(
        inputs(logits=torch.zeros(1, 2), teacher_logits=torch.zeros(1, 2), target=torch.ones(1, 2))
    )
    assert kd.item() == pytest.approx(math.log(2.0))


def test_resample_distribution_halves_by_centres() -> None:
    a_t = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert resample_distribution(a_t, 2).tolist() == [[1.0, 0.0]]
    up = resample_distribution(torch.tensor([[1.0, 0.0]]), 4)
    # centres of 4 bins at 0.25, 0.75 (clamped), 1.25, 1.75 of 2 bins -> 1, 0.75, 0.25, 0
    assert up[0].tolist() == pytest.approx([0.5, 0.375, 0.125, 0.0])


def test_temporal_kd_hand_value_with_flat_head() -> None:
    loss = TemporalAttentionKD(channels=3)
    torch.nn.init.zeros_(loss.head.query.weight)  # a_S uniform over T'=2
    value = loss(
        inputs(
            time_features=torch.randn(1, 2, 3),
            teacher_attention=torch.tensor([[0.5, 0.5, 0.0, 0.0]]),
        )
    )
    assert value.item() == pytest.approx(math.log(2.0))  # KL((1, 0) || (0.5, 0.5))
    loss.direction = "reverse"  # KL((0.5, 0.5) || (1, 0)) is large but finite
    assert (
        loss(
            inputs(
                time_features=torch.randn(1, 2, 3),
                teacher_attention=torch.tensor([[0.5, 0.5, 0, 0]]),
            )
        )
        > 10
    )


def test_temporal_kd_is_zero_when_student_matches_teacher() -> None:
    loss = TemporalAttentionKD(channels=1)
    with torch.no_grad():
        loss.head.query.weight.fill_(1.0)
    feats = torch.tensor([[[1.0], [2.0], [3.0]]])
    a_t = torch.softmax(torch.tensor([[1.0, 2.0, 3.0]]), dim=-1)
    assert loss(inputs(time_features=feats, teacher_attention=a_t)).item() == pytest.approx(
        0.0, abs=1e-7
    )


def test_temporal_kd_gradient_reaches_the_features() -> None:
    loss = TemporalAttentionKD(channels=4)
    feats = torch.randn(2, 5, 4, requires_grad=True)
    a_t = torch.softmax(torch.randn(2, 9), dim=-1)
    loss(inputs(logits=torch.zeros(2, 2), time_features=feats, teacher_attention=a_t)).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_temporal_kd_with_the_students_own_attention() -> None:
    loss = TemporalAttentionKD(channels=None, use_student_attention=True)
    assert loss.head is None
    own = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])  # 2 heads -> mean (0.75, 0.25)
    value = loss(inputs(student_attention=own, teacher_attention=torch.tensor([[0.75, 0.25]])))
    assert value.item() == pytest.approx(0.0, abs=1e-7)


def test_control_targets() -> None:
    a_t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    batch = inputs(logits=torch.zeros(2, 2), teacher_attention=a_t, spans=None, clip_seconds=2.0)
    shuffled = TemporalAttentionKD(channels=1, target="shuffled").target(batch, 2)
    assert shuffled.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    uniform = TemporalAttentionKD(channels=1, target="uniform").target(batch, 4)
    assert uniform.tolist() == [[0.25] * 4] * 2
    with pytest.raises(
        ValueError, match="loss 'temporal_kd target 'span'' needs ground-truth spans"
    ):
        TemporalAttentionKD(channels=1, target="span").target(batch, 4)


def test_span_target_box_on_student_bins() -> None:
    nan = float("nan")
    spans = torch.tensor([[[0.5, 1.0], [nan, nan]], [[0.25, 0.75], [nan, nan]]])
    target, has_span = span_target(spans, steps=4, clip_seconds=2.0)  # bins of 0.5 s
    assert target.tolist() == [[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]]
    assert has_span.tolist() == [True, True]
    target, has_span = span_target(torch.full((1, 1, 2), nan), steps=4, clip_seconds=2.0)
    assert has_span.tolist() == [False] and target.sum() == 0


def test_span_control_leaves_out_clips_without_a_span() -> None:
    nan = float("nan")
    loss = TemporalAttentionKD(channels=3, target="span")
    torch.nn.init.zeros_(loss.head.query.weight)  # a_S uniform over 2 steps
    spans = torch.tensor([[[0.0, 1.0]], [[nan, nan]]])  # clip 2 is silence
    batch = inputs(
        logits=torch.zeros(2, 2), time_features=torch.randn(2, 2, 3), spans=spans, clip_seconds=2.0
    )
    assert loss(batch).item() == pytest.approx(math.log(2.0))  # only clip 1: KL((1,0)||(.5,.5))
    silent = inputs(
        logits=torch.zeros(1, 2),
        time_features=torch.randn(1, 2, 3),
        spans=torch.full((1, 1, 2), nan),
        clip_seconds=2.0,
    )
    assert loss(silent).item() == 0.0


def test_sharpen_with_temperature() -> None:
    p = torch.tensor([[0.2, 0.8]])
    assert sharpen(p, 0.5).tolist()[0] == pytest.approx([0.04 / 0.68, 0.64 / 0.68])
    assert torch.equal(sharpen(p, 1.0), p)


def test_hint_mse_and_cosine() -> None:
    hint = TimeAlignedHint(channels=2, teacher_dim=2)
    with torch.no_grad():
        hint.proj.weight.copy_(torch.eye(2))
        hint.proj.bias.zero_()
    feats = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    assert hint(inputs(time_features=feats, teacher_hidden=hidden)).item() == pytest.approx(4.0 / 4)
    hint.distance = "cosine"
    assert hint(inputs(time_features=feats, teacher_hidden=hidden)).item() == pytest.approx(
        0.0, abs=1e-7
    )


def test_attention_transfer_hand_value() -> None:
    at = TemporalAttentionTransfer(p=2.0)
    feats = torch.ones(1, 2, 3)  # energy (1, 1) -> (0.7071, 0.7071)
    value = at(inputs(time_features=feats, teacher_attention=torch.tensor([[1.0, 0.0]])))
    assert value.item() == pytest.approx(math.sqrt((1 - 1 / math.sqrt(2)) ** 2 + 0.5), abs=1e-6)


def test_weighted_losses_additive_and_convex() -> None:
    cfg = OmegaConf.structured(LossesConfig)
    cfg.logit_kd.weight = 0.25
    cfg.logit_kd.temperature = 1.0
    batch = inputs(logits=torch.zeros(1, 2), teacher_logits=torch.tensor([[math.log(3.0), 0.0]]))
    task, kd = math.log(2.0), 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    total, terms = WeightedLosses(cfg, "single_label")(batch)
    assert set(terms) == {"task", "logit_kd"}
    assert total.item() == pytest.approx(task + 0.25 * kd, abs=1e-6)
    cfg.weighting = "convex"
    total, _ = WeightedLosses(cfg, "single_label")(batch)
    assert total.item() == pytest.approx(0.75 * task + 0.25 * kd, abs=1e-6)
    cfg.logit_kd.weight = 1.5
    with pytest.raises(ValueError, match="sum to <= 1, given 1.5"):
        WeightedLosses(cfg, "single_label")


def test_non_finite_loss_is_refused() -> None:
    cfg = OmegaConf.structured(LossesConfig)
    with pytest.raises(FloatingPointError, match="non-finite loss from term\\(s\\) task"):
        WeightedLosses(cfg, "single_label")(inputs(logits=torch.tensor([[float("nan"), 0.0]])))
