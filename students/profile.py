"""Model size and compute: trainable parameters and multiply-accumulates per forward pass."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from distill.errors import BadValueError


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _rnn_flops(input_shape: Sequence[int], weight_shapes: Sequence[Sequence[int]]) -> int:
    """FLOPs (2 per MAC) of the matrix products of fused RNN layers: every (B x T) row of the
    input meets every weight matrix once per layer and direction. The matrices of one LSTM layer
    are W_ih (4H x I), W_hh (4H x P) and, with proj_size, W_hr (P x H), so a step costs
    4 (I H + P H) + H P MACs (P = H without projection); GRU has 3 gates, a plain RNN 1."""
    rows = math.prod(input_shape[:-1])  # (T, B, I), (B, T, I) or packed (sum of lengths, I)
    return 2 * rows * sum(math.prod(s) for s in weight_shapes if len(s) == 2)


def _mkldnn_rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kw):
    return _rnn_flops(input_shape, [w_ih_shape, w_hh_shape])  # one layer, one direction


def _cudnn_rnn_flops(input_shape, weight_shapes, *args, out_shape=None, **kwargs) -> int:
    return _rnn_flops(input_shape, weight_shapes)  # every layer and direction (biases: 1-d)


# torch's counter knows the CUDA attention kernels but not the CPU one that fused attention
# (F.scaled_dot_product_attention) runs on here; without this its q@k and a@v go uncounted.
# It has no formula for the fused RNN kernels either: nn.LSTM runs as aten.mkldnn_rnn_layer on
# CPU (GRU, RNN and projected LSTMs fall back to counted matmuls there) and LSTM, GRU and RNN
# run as aten._cudnn_rnn on CUDA; without these they would count 0.
_EXTRA_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flops,
    torch.ops.aten._cudnn_rnn: _cudnn_rnn_flops,
}


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one eval-mode forward pass on zeros of `input_shape`.

    Counted by torch's FlopCounterMode (matmuls, convolutions, fused attention and the
    matrix products of recurrent layers; MACs = FLOPs / 2; element-wise ops are not counted).
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
