"""Shared helpers: force a teacher's rollout row onto chosen tokens and check the seconds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from distill.teachers.base import Teacher, TeacherOutput


class WindowForcer:
    """Replaces a teacher's rollout row by one with mass on given tokens (+ prefix tokens)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def force(self, teacher: Teacher, tokens: Sequence[int], prefix: Sequence[int] = ()) -> None:
        def fake_row(attentions, cls_index: int = 0) -> torch.Tensor:
            b, n = attentions[0].shape[0], attentions[0].shape[-1]
            row = torch.zeros(b, n)
            row[:, list(tokens)] = torch.linspace(1.0, 2.0, len(tokens))
            if prefix:
                row[:, list(prefix)] = 10.0  # must be dropped, not renormalised into time
            return row

        self.monkeypatch.setattr(teacher, "rollout_row", fake_row)

    @staticmethod
    def check(out: TeacherOutput, lo: float = 1.0, hi: float = 1.5) -> None:
        inside = (out.spans[:, 0] >= lo - 1e-6) & (out.spans[:, 1] <= hi + 1e-6)
        assert inside.any()
        torch.testing.assert_close(out.attention.sum(-1), torch.ones(out.attention.shape[0]))
        mass = out.attention[:, inside].sum(-1)
        torch.testing.assert_close(mass, torch.ones_like(mass))
        top = out.spans[out.attention.argmax(dim=-1)]
        assert (top[:, 0] >= lo - 1e-6).all() and (top[:, 1] <= hi + 1e-6).all()


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> WindowForcer:
    return WindowForcer(monkeypatch)
