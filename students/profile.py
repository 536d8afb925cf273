"""Model size and compute: trainable parameters and multiply-accumulates per forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from distill.errors import BadValueError


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


# torch's counter knows the CUDA attention kernels but not the CPU one that fused attention
# (F.scaled_dot_product_attention) runs on here; without this its q@k and a@v go uncounted.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one eval-mode forward pass on zeros of `input_shape`.

    Counted by torch's FlopCounterMode (matmuls, convolutions and fused attention; MACs =
    FLOPs / 2).
    """
    if any(int(d) < 1 for d in input_shape):
        raise BadValueError(f"input_shape must be positive sizes, got {tuple(input_shape)}")
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
        with torch.no_grad(), counter:
            model(torch.zeros(tuple(int(d) for d in input_shape), device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
