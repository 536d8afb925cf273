"""BatchNorm in a PT2E QAT graph: its own momentum and epsilon, and frozen statistics.

torchao 0.18 rewrites every BatchNorm of an exported graph with default literals (momentum 0.1,
epsilon 1e-5): once in `prepare_qat_pt2e`'s conv-BatchNorm fusion, and again at each
`.train()` / `.eval()` switch (`allow_exported_model_train_eval`). Students that set their own
(TC-ResNet: epsilon 1e-3; Att-RNN: epsilon 1e-3, momentum 0.01) would then fine-tune a
different normalisation from the one they deploy with. `batchnorm_literals` records them from the
exported graph, keyed by each BatchNorm's running-mean buffer, and `restore_batchnorm_literals`
writes them back, into the BatchNorm nodes and into the `running_var + eps` of the fused
conv-BatchNorm weight scale.
"""

from __future__ import annotations

import torch
from torch import fx

from distill.extras import require

_BATCH_NORM = torch.ops.aten.batch_norm.default
# aten.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
_RUNNING_MEAN, _RUNNING_VAR, _MOMENTUM, _EPS = 3, 4, 6, 7


def _buffer(node: fx.Node, index: int) -> str:
    arg = node.args[index]
    if not isinstance(arg, fx.Node) or arg.op != "get_attr":
        raise RuntimeError(f"BatchNorm node {node.name} has no buffer as argument {index}")
    return str(arg.target)


def batchnorm_literals(graph_module: fx.GraphModule) -> dict[str, tuple[float, float]]:
    """(momentum, eps) of each BatchNorm node, keyed by its running-mean buffer."""
    return {
        _buffer(node, _RUNNING_MEAN): (float(node.args[_MOMENTUM]), float(node.args[_EPS]))
        for node in graph_module.graph.nodes
        if node.target is _BATCH_NORM
    }


def restore_batchnorm_literals(
    graph_module: fx.GraphModule, literals: dict[str, tuple[float, float]]
) -> None:
    """Write the recorded momentum and eps back into every BatchNorm of the graph and into the
    `running_var + eps` of its fused conv-BatchNorm weight scale."""
    changed = False
    for node in graph_module.graph.nodes:
        if node.target is not _BATCH_NORM:
            continue
        key = _buffer(node, _RUNNING_MEAN)
        if key not in literals:
            raise KeyError(f"BatchNorm on {key} was not in the exported graph")
        momentum, eps = literals[key]
        if (node.args[_MOMENTUM], node.args[_EPS]) != (momentum, eps):
            args = list(node.args)
            args[_MOMENTUM], args[_EPS] = momentum, eps
            node.args = tuple(args)
            changed = True
        for user in list(node.args[_RUNNING_VAR].users):
            is_var_plus_eps = user.target is torch.ops.aten.add.Tensor and isinstance(
                user.args[1], float
            )
            if is_var_plus_eps and user.args[1] != eps:
                user.args = (user.args[0], eps)
                changed = True
    if changed:
        graph_module.recompile()


def freeze_batchnorm(graph_module: fx.GraphModule) -> None:
    """Normalise with the running statistics and stop updating them (BatchNorm alone; dropout
    keeps its mode)."""
    require("torchao", "qat", "QAT (torchao pt2e)")
    from torchao.quantization.pt2e.export_utils import _replace_batchnorm

    _replace_batchnorm(graph_module, train_to_eval=True)


__all__ = ["batchnorm_literals", "freeze_batchnorm", "restore_batchnorm_literals"]
