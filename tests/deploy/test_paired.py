"""Paired accuracy change of two models on the same clips: values by hand, McNemar's exact test
against its binomial definition, bad counts refused by name."""

from __future__ import annotations

import math

import pytest

from distill.deploy.paired import format_paired, mcnemar_exact_p, paired_change
from distill.errors import BadValueError


def test_paired_change_by_hand() -> None:
    # 100 clips, 6 fixed, 2 broken: change +4 points; variance (8 - 16 / 100) / 100^2 =
    # 7.84e-4 -> sd 0.028, half-width 1.96 * 0.028 = 0.0549
    r = paired_change(6, 2, 100)
    assert r.change == pytest.approx(0.04)
    assert (r.low, r.high) == pytest.approx((0.04 - 0.054879, 0.04 + 0.054879), abs=1e-5)
    # McNemar: 2 or fewer of 8 at 1/2, both tails: 2 * (1 + 8 + 28) / 256 = 0.2890625
    assert r.mcnemar_p == pytest.approx(74 / 256)
    assert format_paired(r) == "95 % CI -1.49 to +9.49 pts, McNemar p 0.29"
    # no disagreement: no change, a zero-width interval, p 1
    r = paired_change(0, 0, 50)
    assert (r.change, r.low, r.high, r.mcnemar_p) == (0.0, 0.0, 0.0, 1.0)


def test_mcnemar_is_the_two_sided_binomial_test() -> None:
    for fixed, broken in [(13, 35), (14, 18), (5, 0), (20, 20)]:
        n, k = fixed + broken, min(fixed, broken)
        want = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
        assert mcnemar_exact_p(fixed, broken) == pytest.approx(want)
    assert mcnemar_exact_p(13, 35) == pytest.approx(0.0020881, rel=1e-4)  # scipy binomtest


def test_bad_counts_are_named() -> None:
    with pytest.raises(BadValueError, match="fixed=30, broken=30, clips=50"):
        paired_change(30, 30, 50)
    with pytest.raises(BadValueError, match="clips=0"):
        paired_change(0, 0, 0)
