"""Per-step targets of every `losses.timed` arm on hand-made rollouts, spans and labels; each
expected value is worked out by hand in the comment beside it."""

from __future__ import annotations

import math

import pytest
import torch

from distill.core.losses import LossInputs
from distill.core.losses.timed import (
    TimedLoss,
    frame_kd,
    masked_clip_mean,
    timed_binary_cross_entropy,
    timed_cross_entropy,
)
from distill.core.losses.timed_targets import (
    attended_region,
    bin_heard_fraction,
    clip_targets,
    frame_logit_targets,
    maxpool_targets,
    span_heard_fraction,
    span_timed_weights,
    teacher_timed_weights,
    window_weights,
)
from distill.errors import BadValueError

NAN = float("nan")
# a 4 s clip; the student's steps have heard the audio up to 1, 2, 3 and 4 s
STEPS = torch.tensor([1.0, 2.0, 3.0, 4.0])
# one rollout over 4 bins of 1 s each
ROLLOUT = torch.tensor([[0.1, 0.4, 0.3, 0.2]])


def close(got: torch.Tensor, expected: list) -> None:
    assert torch.allclose(got, torch.tensor(expected, dtype=got.dtype), atol=1e-6), got


def test_bin_heard_fraction_spreads_each_bin_evenly() -> None:
    mass = torch.tensor([[0.0, 0.5, 0.5, 0.0]])
    times = torch.tensor([0.5, 1.5, 2.0, 2.5, 3.5, 4.0])
    # 0.5 s: before bin 1; 1.5 s: half of bin 1 (0.25); 2.0: all of bin 1 (0.5);
    # 2.5: bin 1 + half of bin 2 (0.75); 3.5 and 4.0: everything
    close(bin_heard_fraction(mass, times, 4.0), [[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]])


def test_attended_region_keeps_what_reaches_the_fraction_of_the_peak() -> None:
    # peak 0.4, half of it 0.2: 0.1 is dropped, 0.4 + 0.3 + 0.2 = 0.9 kept and renormalised
    close(attended_region(ROLLOUT, 0.5), [[0.0, 4 / 9, 3 / 9, 2 / 9]])
    close(attended_region(ROLLOUT, 0.0), ROLLOUT.tolist())  # fraction 0 keeps everything
    close(attended_region(ROLLOUT, 1.0), [[0.0, 1.0, 0.0, 0.0]])  # only the peak


def test_teacher_timed_weights_rise_over_the_attended_region_and_hold() -> None:
    # kept mass [0, 4/9, 3/9, 2/9]; heard by 1 s: 0, by 2 s: 4/9, by 3 s: 7/9, by 4 s: 1
    close(teacher_timed_weights(ROLLOUT, STEPS, 4.0, region=0.5), [[0.0, 4 / 9, 7 / 9, 1.0]])
    # a window of 2 steps drops what step t - 2 had heard: [0, 4/9, 7/9 - 0, 1 - 4/9]
    close(
        teacher_timed_weights(ROLLOUT, STEPS, 4.0, region=0.5, window=2),
        [[0.0, 4 / 9, 7 / 9, 5 / 9]],
    )
    # region 0: the whole rollout: 0.1, 0.5, 0.8, 1.0
    close(teacher_timed_weights(ROLLOUT, STEPS, 4.0, region=0.0), [[0.1, 0.5, 0.8, 1.0]])


def test_window_weights_subtract_what_left_the_window() -> None:
    heard = torch.tensor([[0.1, 0.5, 0.8, 1.0]])
    close(window_weights(heard, None), heard.tolist())
    close(window_weights(heard, 4), heard.tolist())  # a window as long as the clip
    # window 1: each step's own share: 0.1, 0.4, 0.3, 0.2
    close(window_weights(heard, 1), [[0.1, 0.4, 0.3, 0.2]])


def test_span_heard_fraction_on_hand_made_spans() -> None:
    spans = torch.tensor(
        [
            [[1.0, 3.0], [NAN, NAN]],  # one 2 s span
            [[0.5, 1.0], [2.0, 2.5]],  # two 0.5 s spans, 1 s in total
            [[NAN, NAN], [NAN, NAN]],  # no span (silence)
            [[3.5, 5.0], [NAN, NAN]],  # runs past the 4 s clip: 0.5 s inside
        ]
    )
    heard, has_span = span_heard_fraction(spans, STEPS, 4.0)
    # clip 0: by 1 s nothing, by 2 s half, by 3 s all; clip 1: by 1 s the first span (0.5 of
    # 1.0), by 2 s still 0.5, by 3 s all; clip 3: only by 4 s
    close(heard, [[0, 0.5, 1, 1], [0.5, 0.5, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1]])
    assert has_span.tolist() == [True, True, False, True]
    weights, _ = span_timed_weights(spans, STEPS, 4.0, window=1)
    close(weights[0], [0.0, 0.5, 0.5, 0.0])  # each step's own second of the 2 s span


def test_clip_targets_follow_the_positives_and_drop_unknown_timing() -> None:
    weights = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.2, 0.4, 0.6]])
    positive = torch.tensor([[True], [False], [True]])
    w, mask = clip_targets(weights, positive, valid=torch.tensor([True, True, False]))
    close(w[..., 0], [[0, 0.5, 1], [0, 0, 0], [0.2, 0.4, 0.6]])  # a negative: 0 everywhere
    # clip 2 is positive but its timing is unknown: it takes no part; a negative always does
    close(mask[..., 0], [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    multi, multi_mask = clip_targets(weights[:1], torch.tensor([[True, False]]))
    close(multi[0], [[0, 0], [0.5, 0], [1, 0]])
    assert bool((multi_mask == 1).all())


def test_maxpool_targets_take_the_peak_step_of_positives_and_every_step_of_negatives() -> None:
    scores = torch.tensor([[[0.1], [0.7], [0.2]], [[0.9], [0.1], [0.3]]])
    w, mask = maxpool_targets(scores, torch.tensor([[True], [False]]))
    # clip 0 (keyword): target 1 at its peak step 1 only; clip 1 (no keyword): 0 at every step
    close(w[..., 0], [[0, 1, 0], [0, 0, 0]])
    close(mask[..., 0], [[0, 1, 0], [1, 1, 1]])
    multi = torch.tensor([[[0.1, 0.8], [0.6, 0.2], [0.3, 0.1]]])
    w, mask = maxpool_targets(multi, torch.tensor([[True, False]]))
    close(w[0], [[0, 0], [1, 0], [0, 0]])  # class 0's peak is step 1; class 1 is negative
    close(mask[0], [[0, 1], [1, 1], [0, 1]])


def test_frame_logit_targets_interpolate_between_token_centres() -> None:
    teacher = torch.tensor([[[0.0], [10.0], [20.0], [30.0]]])  # centres 0.5, 1.5, 2.5, 3.5 s
    times = torch.tensor([0.25, 1.0, 2.0, 3.5, 4.0])
    # 0.25 s: before the first centre (held at 0); 1.0 s: halfway 0..10; 2.0 s: halfway
    # 10..20; 3.5 s: the last centre; 4.0 s: beyond it (held at 30)
    close(frame_logit_targets(teacher, times, 4.0)[..., 0], [[0.0, 5.0, 15.0, 30.0, 30.0]])


def test_losses_on_hand_made_logits() -> None:
    # three classes [keyword, _unknown_, _silence_], all logits 0: each p = 1/3
    logits = torch.zeros(1, 3, 3)
    w = torch.tensor([[[1.0], [0.5], [0.0]]])
    ones = torch.ones_like(w)
    # step 0: -log(1/3) = ln 3; step 1: 0.5 ln 3 + 0.5 (-log(2/3)); step 2: -log(2/3) = ln 1.5
    expected = (math.log(3) + 0.5 * math.log(3) + 0.5 * math.log(1.5) + math.log(1.5)) / 3
    got = timed_cross_entropy(logits, torch.tensor([0]), w, ones, [1, 2])
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # masked: only step 0 counts: ln 3
    mask = torch.tensor([[[1.0], [0.0], [0.0]]])
    assert timed_cross_entropy(logits, torch.tensor([0]), w, mask, [1, 2]).item() == (
        pytest.approx(math.log(3), rel=1e-6)
    )
    # binary: logit 0 is p = 0.5, BCE ln 2 whatever the target
    bce = timed_binary_cross_entropy(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, 2))
    assert bce.item() == pytest.approx(math.log(2), rel=1e-6)


def test_masked_clip_mean_weighs_every_clip_the_same() -> None:
    loss = torch.tensor([[[1.0], [3.0]], [[10.0], [20.0]]])
    mask = torch.tensor([[[1.0], [1.0]], [[0.0], [1.0]]])
    assert masked_clip_mean(loss, mask).item() == pytest.approx((2.0 + 20.0) / 2)  # means 2, 20
    assert masked_clip_mean(loss, torch.zeros_like(mask)).item() == 0.0


def test_frame_kd_is_zero_on_the_teachers_own_logits() -> None:
    logits = torch.randn(2, 5, 4)
    assert frame_kd(logits, logits, "single_label", 2.0).item() == pytest.approx(0.0, abs=1e-6)
    # T^2 KL: one step, teacher [ln 3, 0] = p (3/4, 1/4), student [0, 0] = (1/2, 1/2), T = 1
    teacher = torch.tensor([[[math.log(3), 0.0]]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert frame_kd(torch.zeros(1, 1, 2), teacher, "single_label", 1.0).item() == (
        pytest.approx(kl, rel=1e-5)
    )


CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def batch(**kw) -> LossInputs:
    """Two clips of 4 s on 4 steps: 'yes' (keyword) and '_silence_'."""
    frames = torch.zeros(2, 4, 4)
    frames[0, 2, 0] = 2.0  # the keyword's posterior peaks at step 2 in clip 0
    defaults = {
        "logits": torch.zeros(2, 4),
        "target": torch.tensor([0, 3]),
        "frame_logits": frames,
        "step_seconds": STEPS,
        "clip_seconds": 4.0,
        "teacher_attention": torch.cat([ROLLOUT, ROLLOUT]),
        "spans": torch.tensor([[[1.0, 3.0]], [[NAN, NAN]]]),
    }
    return LossInputs(**{**defaults, **kw})


def expected_ce(frames: torch.Tensor, label: int, w: list[float], steps: list[int]) -> float:
    """The per-step loss of one clip by the definition: -(w log p_y + (1 - w) log P_fillers)."""
    logp = torch.log_softmax(frames, dim=-1)
    total = 0.0
    for t, wt in zip(steps, w):
        filler = torch.logsumexp(logp[t, 2:], dim=0).item()
        total -= wt * logp[t, label].item() + (1 - wt) * filler
    return total / len(steps)


@pytest.mark.parametrize(
    ("target", "keyword_w", "keyword_steps"),
    [
        ("maxpool", [1.0], [2]),  # the peak step only
        ("teacher", [0.0, 4 / 9, 7 / 9, 1.0], [0, 1, 2, 3]),  # as in the rollout test above
        ("span", [0.0, 0.5, 1.0, 1.0], [0, 1, 2, 3]),  # the 1-3 s span
        # the rollout of the other clip (the same one here): the teacher's weights
        ("shuffled", [0.0, 4 / 9, 7 / 9, 1.0], [0, 1, 2, 3]),
    ],
)
def test_timed_loss_per_target(target: str, keyword_w: list, keyword_steps: list) -> None:
    inputs = batch()
    loss = TimedLoss("single_label", target, CLASSES)(inputs)
    keyword = expected_ce(inputs.frame_logits[0], 0, keyword_w, keyword_steps)
    silence = expected_ce(inputs.frame_logits[1], 3, [0.0] * 4, [0, 1, 2, 3])  # every step
    assert loss.item() == pytest.approx((keyword + silence) / 2, rel=1e-5)


def test_shuffled_takes_another_clips_rollout() -> None:
    other = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # clip 1's rollout: all in the last second
    inputs = batch(teacher_attention=torch.cat([ROLLOUT, other]))
    loss = TimedLoss("single_label", "shuffled", CLASSES)(inputs)
    # clip 0 gets clip 1's rollout: heard 0, 0, 0, 1 by 1, 2, 3, 4 s
    keyword = expected_ce(inputs.frame_logits[0], 0, [0.0, 0.0, 0.0, 1.0], [0, 1, 2, 3])
    silence = expected_ce(inputs.frame_logits[1], 3, [0.0] * 4, [0, 1, 2, 3])
    assert loss.item() == pytest.approx((keyword + silence) / 2, rel=1e-5)


def test_timed_loss_refuses_what_it_cannot_train() -> None:
    with pytest.raises(BadValueError, match="needs keyword classes and a non-keyword class"):
        TimedLoss("single_label", "maxpool", ["yes", "no"])
    with pytest.raises(BadValueError, match="losses.timed.target must be one of"):
        TimedLoss("single_label", "spans", CLASSES)
    soft = batch(target=torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
    with pytest.raises(BadValueError, match="needs class indices"):
        TimedLoss("single_label", "maxpool", CLASSES)(soft)
    with pytest.raises(BadValueError, match="needs the teacher's per-token class logits"):
        TimedLoss("single_label", "frame_logit", CLASSES)(batch())
