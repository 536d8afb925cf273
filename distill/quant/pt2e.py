"""PT2E fake-quant preparation of a student that still reports its tapped time features.

The PT2E graph (torch.export + torchao `prepare_qat_pt2e`) has no submodules by the original
names, so a forward hook cannot be put on it. Instead the student is exported inside
`TappedStudent`, whose forward returns (logits, tap outputs...): the tapped tensors become graph
outputs, fake-quantized like every other activation. `QATStudent` runs the prepared graph,
returns the logits and keeps the tap outputs in `GraphTap`s that read like `FeatureTap`s, so
`DistillModule` computes its losses unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from students.tap import to_time_features

SUPPORTED_WEIGHT_BITS = (2, 3, 4, 5, 6, 7, 8)


class TappedStudent(nn.Module):
    """Student whose forward returns (logits, *outputs of the named submodules)."""

    def __init__(self, student: nn.Module, tap_names: list[str]) -> None:
        super().__init__()
        self.student = student
        modules = dict(student.named_modules())
        missing = [n for n in tap_names if n not in modules]
        if missing:
            raise KeyError(f"{type(student).__name__} has no submodule named {missing[0]!r}")
        self._seen: dict[str, Tensor] = {}
        self._handles = [
            modules[name].register_forward_hook(self._hook(name)) for name in tap_names
        ]
        self.tap_names = list(tap_names)

    def _hook(self, name: str) -> Any:
        def store(module: nn.Module, inputs: Any, output: Any) -> None:
            self._seen[name] = output[0] if isinstance(output, (tuple, list)) else output

        return store

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        logits = self.student(x)
        return (logits, *[self._seen[name] for name in self.tap_names])

    def remove_hooks(self) -> None:
        """Detach the hooks from the student (after export)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


class GraphTap:
    """Holds one tapped output of the prepared graph; same reading interface as FeatureTap."""

    def __init__(self, module_name: str, layout: str) -> None:
        self.module_name = module_name
        self.layout = layout
        self._output: Tensor | None = None

    def store(self, output: Tensor) -> None:
        self._output = output

    @property
    def output(self) -> Tensor:
        if self._output is None:
            raise RuntimeError(f"QAT tap on {self.module_name!r} has seen no forward pass yet")
        return self._output

    def features(self) -> Tensor:
        return to_time_features(self.output, self.layout)

    def clear(self) -> None:
        self._output = None

    def remove(self) -> None:
        self._output = None


def quantization_config(weight_bits: int = 8, is_qat: bool = True) -> Any:
    """X86 scheme: uint8 per-tensor affine activations, signed per-channel symmetric weights
    (8-bit by default; 2..7 bits keep int8 storage with a narrower integer range)."""
    import dataclasses

    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    if weight_bits not in SUPPORTED_WEIGHT_BITS:
        raise ValueError(
            f"qat.weight_bits={weight_bits!r}: the PT2E X86 quantizer supports "
            f"{SUPPORTED_WEIGHT_BITS} (int8 storage)"
        )
    config = get_default_x86_inductor_quantization_config(is_qat=is_qat)
    if weight_bits == 8:
        return config
    half = 2 ** (weight_bits - 1)
    weight = dataclasses.replace(config.weight, quant_min=-half, quant_max=half - 1)
    return dataclasses.replace(config, weight=weight)


def prepare_qat(
    student: nn.Module, taps: list[tuple[str, str]], example: Tensor, weight_bits: int = 8
) -> QATStudent:
    """Export `student` (strict, dynamic batch) with its taps as outputs and insert fake-quant."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    config = quantization_config(weight_bits)
    wrapper = TappedStudent(student, [name for name, _ in taps]).train()
    batch = torch.export.Dim("batch", min=1, max=4096)
    if example.shape[0] < 2:
        raise ValueError("prepare_qat needs an example batch of at least 2 (dynamic batch)")
    exported = torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},), strict=True)
    wrapper.remove_hooks()
    prepared = prepare_qat_pt2e(exported.module(), X86InductorQuantizer().set_global(config))
    allow_exported_model_train_eval(prepared)
    quantized = sum(1 for n in prepared.graph.nodes if n.op == "call_module")
    if quantized == 0:
        raise RuntimeError(
            f"PT2E QAT inserted no fake-quant into {type(student).__name__}: the X86 quantizer "
            "covers Conv2d and Linear only"
        )
    return QATStudent(prepared, taps, weight_bits)


class QATStudent(nn.Module):
    """The prepared (fake-quant) graph: forward returns logits, taps keep the tapped outputs."""

    def __init__(self, graph: nn.Module, taps: list[tuple[str, str]], weight_bits: int) -> None:
        super().__init__()
        self.graph = graph
        self.weight_bits = weight_bits
        self.taps = [GraphTap(name, layout) for name, layout in taps]

    def forward(self, x: Tensor) -> Tensor:
        logits, *tapped = self.graph(x)
        for tap, value in zip(self.taps, tapped):
            tap.store(value)
        return logits

    def student_state_dict(self) -> dict[str, Tensor]:
        """Float weights and BatchNorm statistics under the plain student's names."""
        prefix = "student."
        return {
            k[len(prefix) :]: v.detach().cpu().clone()
            for k, v in self.graph.state_dict().items()
            if k.startswith(prefix)
        }

    def fake_quant_count(self) -> int:
        """Number of fake-quantize modules in the graph (activations and weights)."""
        return sum(1 for n in self.graph.graph.nodes if n.op == "call_module")

    def convert(self) -> nn.Module:
        """The int8 (Q/DQ) torch model of the bare student: logits only, taps dropped."""
        import copy

        from torch.utils._pytree import tree_structure
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        graph = copy.deepcopy(self.graph)
        graph.eval()
        converted = convert_pt2e(graph)
        output = next(n for n in converted.graph.nodes if n.op == "output")
        logits = output.args[0][0]
        output.args = ((logits,),)
        codegen = converted.graph._codegen
        codegen.pytree_info = codegen.pytree_info._replace(out_spec=tree_structure(0))
        converted.graph.eliminate_dead_code()
        converted.recompile()
        return converted


__all__ = ["GraphTap", "QATStudent", "TappedStudent", "prepare_qat", "quantization_config"]
