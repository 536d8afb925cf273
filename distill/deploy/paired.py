"""How sure an accuracy change between two models on the same clips is: the paired change, its
95 % confidence interval and McNemar's exact test, from the clips each model gets right alone.

An int8 model that agrees with its float model on 87 % of 549 clips changes about 70 decisions,
some right to wrong and some wrong to right; the net change in accuracy then has a sampling
spread of about sqrt(70) / 549 = 1.5 points, and a target such as "within 0.5 points" is met or
missed by chance unless the interval is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from distill.errors import BadValueError

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class PairedChange:
    """Accuracy change of model B against model A on the same `clips` (fractions)."""

    change: float
    low: float
    high: float
    mcnemar_p: float
    fixed: int
    broken: int
    clips: int


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of `fixed` against `broken` at 1/2."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_change(fixed: int, broken: int, clips: int) -> PairedChange:
    """The change (fixed - broken) / clips, with its normal-approximation 95 % interval for
    paired proportions (variance ((fixed + broken) - (fixed - broken)^2 / clips) / clips^2) and
    McNemar's exact p-value; `fixed`: clips B gets right and A wrong, `broken` the reverse."""
    if clips <= 0 or fixed < 0 or broken < 0 or fixed + broken > clips:
        raise BadValueError(
            f"paired change needs 0 <= fixed + broken <= clips and clips > 0; given "
            f"fixed={fixed}, broken={broken}, clips={clips}"
        )
    change = (fixed - broken) / clips
    variance = max((fixed + broken) - (fixed - broken) ** 2 / clips, 0.0) / clips**2
    half = Z95 * math.sqrt(variance)
    return PairedChange(
        change, change - half, change + half, mcnemar_exact_p(fixed, broken), fixed, broken,
        clips,
    )  # fmt: skip


def format_paired(result: PairedChange) -> str:
    """ "95 % CI -1.9 to +0.8 pts, McNemar p 0.61"."""
    return (
        f"95 % CI {100 * result.low:+.2f} to {100 * result.high:+.2f} pts, "
        f"McNemar p {result.mcnemar_p:.2g}"
    )


__all__ = ["PairedChange", "format_paired", "mcnemar_exact_p", "paired_change"]
