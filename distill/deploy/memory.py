"""Memory budget of a `.tflite` model as microcontroller users size it: flash and peak
activation memory.

Flash is the file's bytes (the flatbuffer: weights, graph and metadata; what a microcontroller
keeps in flash). Peak activation memory is read from the flatbuffer alone: the operators of the
main subgraph run in the order they are stored; every tensor without constant data (the graph
inputs and outputs and every intermediate) lives from the operator that writes it (graph
inputs: from the start) to the last operator that reads it (graph outputs and variable
tensors: to the end); the bytes of a tensor are its element count times its dtype size; the
peak is the largest sum of the tensors alive during one operator (its inputs and outputs
included). It is what an ideal memory planner needs: a real arena (TFLite Micro's greedy
planner) may need more for fragmentation, alignment and kernel scratch buffers, and less where
an operator such as RESHAPE works in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import BadValueError, MissingFileError
from distill.extras import require

# bytes per element of the flatbuffer's TensorType codes (schema.fbs order)
DTYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 12: 8, 15: 4, 16: 2, 18: 2}


def peak_live_bytes(
    sizes: Sequence[int],
    ops: Sequence[tuple[Sequence[int], Sequence[int]]],
    graph_inputs: Sequence[int],
    graph_outputs: Sequence[int],
    persistent: Sequence[int] = (),
) -> tuple[int, int]:
    """(peak bytes, index of the operator at the peak) of the tensors alive at once.

    `sizes[t]` is tensor t's bytes (0 for constants, which are not counted); `ops` lists each
    operator's (input, output) tensor indices in execution order (-1: optional input absent).
    """
    if not ops:
        raise BadValueError("the graph has no operators")
    last = len(ops) - 1
    first_use = {t: 0 for t in graph_inputs}
    last_use = {t: last for t in (*graph_outputs, *persistent)}
    first_use.update({t: 0 for t in persistent})
    for i, (inputs, outputs) in enumerate(ops):
        for t in outputs:
            first_use.setdefault(t, i)
            last_use[t] = max(last_use.get(t, i), i)
        for t in inputs:
            if t >= 0:
                first_use.setdefault(t, i)  # read before written: alive from here
                last_use[t] = max(last_use.get(t, i), i)
    alive = np.zeros(len(ops), dtype=np.int64)
    for t, start in first_use.items():
        alive[start : last_use[t] + 1] += sizes[t]
    at = int(alive.argmax())
    return int(alive[at]), at


def op_names(model: Any) -> list[str]:
    """The operator name of every operator code of a parsed `.tflite` (`schema.Model`), in
    operator-code order (custom operators by their custom code)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append(custom.decode() if custom else names.get(builtin, str(builtin)))
    return codes


def _tensor_bytes(model: Any, tensor: Any) -> int:
    buffer = model.Buffers(tensor.Buffer())
    if tensor.Buffer() > 0 and (buffer.DataLength() > 0 or buffer.Size() > 0):
        return 0  # constant data (weights): in flash, not in the activation arena
    if tensor.Type() not in DTYPE_BYTES:
        raise BadValueError(f"tensor {tensor.Name().decode()} has unsupported type {tensor.Type()}")
    shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.zeros(0, dtype=np.int64)
    if np.any(shape < 0):
        raise BadValueError(f"tensor {tensor.Name().decode()} has a dynamic shape {shape}")
    return int(np.prod(shape, dtype=np.int64)) * DTYPE_BYTES[tensor.Type()]


def memory_budget(path: str | Path) -> dict[str, Any]:
    """Flash bytes, peak activation bytes (and the operator where it occurs) of a `.tflite`."""
    require("ai_edge_litert", "litert", "the memory budget of a .tflite")
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"LiteRT model {path} does not exist")
    data = path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    sizes = [_tensor_bytes(model, t) for t in tensors]
    names = op_names(model)
    ops, kinds = [], []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        inputs = op.InputsAsNumpy().tolist() if op.InputsLength() else []
        outputs = op.OutputsAsNumpy().tolist() if op.OutputsLength() else []
        ops.append((inputs, outputs))
        kinds.append(names[op.OpcodeIndex()])
    persistent = [i for i, t in enumerate(tensors) if t.IsVariable()]
    peak, at = peak_live_bytes(
        sizes, ops, graph.InputsAsNumpy().tolist(), graph.OutputsAsNumpy().tolist(), persistent
    )
    return {
        "flash_bytes": len(data),
        "weight_bytes": sum(
            model.Buffers(b).DataLength() for b in {t.Buffer() for t in tensors} if b > 0
        ),
        "peak_activation_bytes": peak,
        "peak_at_op": f"{at}:{kinds[at]}",
        "operators": len(ops),
    }


def format_budget(name: str, budget: dict[str, Any]) -> str:
    """One line: flash, weights and peak activation memory in KB."""
    return (
        f"{name:<24s} flash {budget['flash_bytes'] / 1024:8.1f} KB  weights "
        f"{budget['weight_bytes'] / 1024:8.1f} KB  peak activations "
        f"{budget['peak_activation_bytes'] / 1024:8.1f} KB (at op {budget['peak_at_op']})"
    )


__all__ = ["DTYPE_BYTES", "format_budget", "memory_budget", "op_names", "peak_live_bytes"]
