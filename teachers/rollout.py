"""Attention rollout (Abnar & Zuidema, 2020): how much each input token feeds each output token."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from distill.errors import BadValueError

HEAD_FUSIONS = ("mean", "max", "min")
QUERIES = ("first", "cls", "mean")


def _check_attentions(attentions: Sequence[torch.Tensor]) -> None:
    if isinstance(attentions, torch.Tensor) or len(attentions) == 0:
        raise BadValueError(
            "attentions must be a non-empty sequence of per-layer (B, H, N, N) tensors, "
            f"got {type(attentions).__name__}"
            + ("" if isinstance(attentions, torch.Tensor) else f" of length {len(attentions)}")
        )
    first = attentions[0]
    for i, a in enumerate(attentions):
        if not isinstance(a, torch.Tensor) or a.dim() != 4 or a.shape[-1] != a.shape[-2]:
            shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise BadValueError(f"attentions[{i}] must be a (B, H, N, N) tensor, got {shape}")
        if a.shape[0] != first.shape[0] or a.shape[-1] != first.shape[-1]:
            raise BadValueError(
                f"attentions[{i}] has shape {tuple(a.shape)}, inconsistent with attentions[0] "
                f"{tuple(first.shape)}: batch size and token count must match across layers"
            )


def select_layers(num_layers: int, layers: Sequence[int] | None) -> list[int]:
    """Layer indices (Python-style, negatives count from the end) resolved and sorted, or all."""
    if layers is None:
        return list(range(num_layers))
    if isinstance(layers, (int, str)) or len(layers) == 0:
        raise BadValueError(
            f"rollout layers must be a non-empty list of layer indices (e.g. [-2, -1] for the "
            f"last two) or None for all, got {layers!r}"
        )
    resolved = []
    for idx in layers:
        if not isinstance(idx, int) or not -num_layers <= idx < num_layers:
            raise BadValueError(
                f"rollout layer index {idx!r} is out of range for a model with {num_layers} layers "
                f"(valid: {-num_layers}..{num_layers - 1})"
            )
        resolved.append(idx % num_layers)
    if len(set(resolved)) != len(resolved):
        raise BadValueError(f"rollout layers {list(layers)} name the same layer twice")
    return sorted(resolved)


def attention_rollout(
    attentions: Sequence[torch.Tensor],
    head_fusion: str = "mean",
    residual: float = 0.5,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """Rollout R (B, N, N) of per-layer attentions (B, H, N, N), first layer first.

    Each selected layer: heads fused (mean | max | min) into A, then
    Ã = residual·A + (1 − residual)·I, rows normalised to sum to 1; R₁ = Ã₁, R_l = Ã_l·R_{l−1}.
    Row i of R is the share of each input token in output token i; every row sums to 1.
    """
    _check_attentions(attentions)
    if head_fusion not in HEAD_FUSIONS:
        raise BadValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not 0.0 <= residual <= 1.0:
        raise BadValueError(f"rollout residual must lie in [0, 1], got {residual}")
    chosen = select_layers(len(attentions), layers)

    n = attentions[0].shape[-1]
    rollout: torch.Tensor | None = None
    for idx in chosen:
        a = attentions[idx].float()
        if head_fusion == "mean":
            fused = a.mean(dim=1)
        elif head_fusion == "max":
            fused = a.amax(dim=1)
        else:
            fused = a.amin(dim=1)
        eye = torch.eye(n, dtype=fused.dtype, device=fused.device)
        mixed = residual * fused + (1.0 - residual) * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        rollout = mixed if rollout is None else mixed @ rollout
    assert rollout is not None
    return rollout


def query_row(rollout: torch.Tensor, query: str = "first", cls_index: int = 0) -> torch.Tensor:
    """One row (B, N) of a rollout (B, N, N): the first token's, the CLS token's, or the mean."""
    if rollout.dim() != 3 or rollout.shape[-1] != rollout.shape[-2]:
        raise BadValueError(f"rollout must be a (B, N, N) tensor, got {tuple(rollout.shape)}")
    if query == "first":
        return rollout[:, 0]
    if query == "cls":
        n = rollout.shape[-1]
        if not -n <= cls_index < n:
            raise BadValueError(f"cls_index {cls_index} is out of range for {n} tokens")
        return rollout[:, cls_index]
    if query == "mean":
        return rollout.mean(dim=1)
    raise BadValueError(f"rollout query must be one of {QUERIES}, got {query!r}")
