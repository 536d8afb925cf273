"""Attention rollout against matrices worked out by hand."""

from __future__ import annotations

import pytest
import torch
from distill.teachers.rollout import attention_rollout, query_row


def t(rows: list) -> torch.Tensor:
    """A (1, 1, N, N) single-head attention from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# Layer 1: A1 = [[1, 0], [.5, .5]] -> Ã1 = .5 A1 + .5 I = [[1, 0], [.25, .75]]
# Layer 2: A2 = [[0, 1], [1, 0]]   -> Ã2 = [[.5, .5], [.5, .5]]
# R = Ã2 · Ã1 = [[.5 + .125, .375], [.625, .375]]
A1 = t([[1.0, 0.0], [0.5, 0.5]])
A2 = t([[0.0, 1.0], [1.0, 0.0]])


def test_two_layers_one_head_by_hand() -> None:
    r = attention_rollout([A1, A2])
    expected = torch.tensor([[[0.625, 0.375], [0.625, 0.375]]])
    torch.testing.assert_close(r, expected)
    # The other multiplication order (Ã1 · Ã2) would give [[.5, .5], [.5, .5]].


def test_residual_one_is_plain_product() -> None:
    # A2 · A1 = [[.5, .5], [1, 0]]
    r = attention_rollout([A1, A2], residual=1.0)
    torch.testing.assert_close(r, torch.tensor([[[0.5, 0.5], [1.0, 0.0]]]))


def test_layer_selection() -> None:
    torch.testing.assert_close(
        attention_rollout([A1, A2], layers=[-1]), torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    )
    torch.testing.assert_close(
        attention_rollout([A1, A2], layers=[0]), torch.tensor([[[1.0, 0.0], [0.25, 0.75]]])
    )
    # Order of the given indices does not matter: layers always compose bottom-up.
    torch.testing.assert_close(
        attention_rollout([A1, A2], layers=[1, 0]), attention_rollout([A1, A2])
    )


# Two heads, N = 2: H1 = [[1, 0], [1, 0]], H2 = [[.5, .5], [0, 1]]
TWO_HEADS = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]]])


@pytest.mark.parametrize(
    ("fusion", "expected"),
    [
        # mean = [[.75, .25], [.5, .5]]        -> [[.875, .125], [.25, .75]]
        ("mean", [[0.875, 0.125], [0.25, 0.75]]),
        # max = [[1, .5], [1, 1]] -> [[1, .25], [.5, 1]], row sums 1.25 and 1.5
        ("max", [[0.8, 0.2], [1 / 3, 2 / 3]]),
        # min = [[.5, 0], [0, 0]] -> [[.75, 0], [0, .5]] -> identity after normalising
        ("min", [[1.0, 0.0], [0.0, 1.0]]),
    ],
)
def test_head_fusion_by_hand(fusion: str, expected: list) -> None:
    r = attention_rollout([TWO_HEADS], head_fusion=fusion)
    torch.testing.assert_close(r, torch.tensor([expected]))


def test_three_tokens_two_layers_by_hand() -> None:
    # Ã1 = .5 P + .5 I for the cyclic permutation P; Ã2 = .5 J/3 + .5 I (diag 2/3, off 1/6).
    perm = t([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    uniform = torch.full((1, 1, 3, 3), 1 / 3)
    r = attention_rollout([perm, uniform])
    expected = torch.tensor([[[5, 5, 2], [2, 5, 5], [5, 2, 5]]]) / 12
    torch.testing.assert_close(r, expected)


def test_unnormalised_input_rows_and_batch() -> None:
    scaled = torch.cat([A1 * 3.0, t([[0.0, 1.0], [0.0, 1.0]])])  # batch of 2
    r = attention_rollout([scaled])
    # item 0: .5·3·A1 + .5 I = [[2, 0], [.75, 1.25]] -> [[1, 0], [.375, .625]]
    # item 1: [[.5, .5], [0, 1]]
    torch.testing.assert_close(r[0], torch.tensor([[1.0, 0.0], [0.375, 0.625]]))
    torch.testing.assert_close(r[1], torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 2))


def test_random_rows_sum_to_one() -> None:
    g = torch.Generator().manual_seed(0)
    atts = [torch.rand(3, 4, 7, 7, generator=g).softmax(-1) for _ in range(5)]
    for fusion in ("mean", "max", "min"):
        r = attention_rollout(atts, head_fusion=fusion, layers=[-3, -2, -1])
        torch.testing.assert_close(r.sum(-1), torch.ones(3, 7))


def test_query_row() -> None:
    r = attention_rollout([A1, A2], residual=1.0)  # [[.5, .5], [1, 0]]
    torch.testing.assert_close(query_row(r, "first"), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(query_row(r, "cls", cls_index=1), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(query_row(r, "mean"), torch.tensor([[0.75, 0.25]]))
    with pytest.raises(ValueError, match="query"):
        query_row(r, "last")
    with pytest.raises(ValueError, match="cls_index"):
        query_row(r, "cls", cls_index=5)


@pytest.mark.parametrize(
    ("attentions", "kwargs", "match"),
    [
        ([], {}, "non-empty"),
        ([torch.rand(1, 2, 3)], {}, r"\(B, H, N, N\)"),
        ([torch.rand(1, 1, 3, 3), torch.rand(1, 1, 4, 4)], {}, "inconsistent"),
        ([torch.rand(1, 1, 3, 3)], {"head_fusion": "sum"}, "head_fusion"),
        ([torch.rand(1, 1, 3, 3)], {"layers": [2]}, "out of range"),
        ([torch.rand(1, 1, 3, 3)] * 2, {"layers": [1, -1]}, "twice"),
        ([torch.rand(1, 1, 3, 3)], {"layers": 1}, "list of layer indices"),
        ([torch.rand(1, 1, 3, 3)], {"residual": 1.5}, "residual"),
    ],
)
def test_bad_input_raises(attentions: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        attention_rollout(attentions, **kwargs)
