"""PT2E fake-quant preparation of a student that still reports its tapped time features.

The PT2E graph (torch.export + torchao `prepare_qat_pt2e`) has no submodules by the original
names, so a forward hook cannot be put on it. Instead the student is exported inside
`TappedStudent`, whose forward returns (logits, tap outputs...): the tapped tensors become graph
outputs, fake-quantized like every other activation. `QATStudent` runs the prepared graph,
returns the logits and keeps the tap outputs in `GraphTap`s that read like `FeatureTap`s, so
`DistillModule` computes its losses unchanged.

Which convolutions get fake-quant (`fake_quant`): "deployment" (default) leaves float exactly
the convolutions the int8 export keeps float (`distill.deploy.int8.stays_float`: one input
channel, depthwise), so QAT trains for the rounding of the deployed graph; "all" is the torchao
X86 quantizer's own recipe, which quantizes every convolution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from distill.deploy.pt2e_batchnorm import (
    batchnorm_literals,
    freeze_batchnorm,
    restore_batchnorm_literals,
)
from distill.errors import BadValueError
from distill.extras import require
from distill.students.tap import to_time_features

SUPPORTED_WEIGHT_BITS = (2, 3, 4, 5, 6, 7, 8)
FAKE_QUANT_SCOPES = ("deployment", "all")


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

    require("torchao", "qat", "QAT (torchao pt2e)")
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    if weight_bits not in SUPPORTED_WEIGHT_BITS:
        raise BadValueError(
            f"qat.weight_bits={weight_bits!r}: the PT2E X86 quantizer supports "
            f"{SUPPORTED_WEIGHT_BITS} (int8 storage)"
        )
    config = get_default_x86_inductor_quantization_config(is_qat=is_qat)
    if weight_bits == 8:
        return config
    half = 2 ** (weight_bits - 1)
    weight = dataclasses.replace(config.weight, quant_min=-half, quant_max=half - 1)
    return dataclasses.replace(config, weight=weight)


def float_conv_names(student: nn.Module) -> list[str]:
    """Submodules of `student` whose convolutions the int8 export keeps float."""
    from distill.deploy.int8 import stays_float

    return [
        name
        for name, m in student.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd) and stays_float(m.in_channels, m.groups)
    ]


def x86_quantizer(config: Any, float_modules: list[str]) -> Any:
    """The torchao X86 quantizer with `config` globally and the named submodules left float."""
    require("torchao", "qat", "QAT (torchao pt2e)")
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        QUANT_ANNOTATION_KEY,
        X86InductorQuantizer,
    )

    class X86QuantizerWithFloatModules(X86InductorQuantizer):
        """torchao 0.18 marks a module left float with an empty annotation, which its QAT
        conv-BatchNorm fusion cannot read (IndexError on the empty input map); the empty
        annotations are dropped once the graph is annotated, which also leaves those nodes
        float."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            super().annotate(model)
            for node in model.graph.nodes:
                note = node.meta.get(QUANT_ANNOTATION_KEY)
                if note is not None and not note.input_qspec_map and note.output_qspec is None:
                    del node.meta[QUANT_ANNOTATION_KEY]
            return model

    quantizer = X86QuantizerWithFloatModules().set_global(config)
    for name in float_modules:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def prepare_qat(
    student: nn.Module,
    taps: list[tuple[str, str]],
    example: Tensor,
    weight_bits: int = 8,
    fake_quant: str = "deployment",
    freeze_bn: bool = False,
) -> QATStudent:
    """Export `student` (strict, dynamic batch) with its taps as outputs and insert fake-quant
    (`fake_quant`: "deployment" skips the convolutions the int8 export keeps float, "all"
    quantizes every convolution). The BatchNorms keep the student's momentum and eps; with
    `freeze_bn` they normalise with their running statistics in training too."""
    require("torchao", "qat", "QAT (torchao pt2e)")
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    if fake_quant not in FAKE_QUANT_SCOPES:
        raise BadValueError(f"qat.fake_quant={fake_quant!r}: expected one of {FAKE_QUANT_SCOPES}")
    config = quantization_config(weight_bits)
    skipped = float_conv_names(student) if fake_quant == "deployment" else []
    wrapper = TappedStudent(student, [name for name, _ in taps]).train()
    batch = torch.export.Dim("batch", min=1, max=4096)
    if example.shape[0] < 2:
        raise BadValueError("prepare_qat needs an example batch of at least 2 (dynamic batch)")
    exported = torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},), strict=True)
    wrapper.remove_hooks()
    quantizer = x86_quantizer(config, [f"student.{name}" for name in skipped])
    graph = exported.module()
    literals = batchnorm_literals(graph)
    prepared = prepare_qat_pt2e(graph, quantizer)
    restore_batchnorm_literals(prepared, literals)
    allow_exported_model_train_eval(prepared)
    quantized = sum(1 for n in prepared.graph.nodes if n.op == "call_module")
    if quantized == 0:
        raise RuntimeError(
            f"PT2E QAT inserted no fake-quant into {type(student).__name__}: the X86 quantizer "
            "covers Conv2d and Linear only"
            + (f", and {len(skipped)} convolutions stay float in deployment" if skipped else "")
        )
    return QATStudent(prepared, taps, weight_bits, literals, freeze_bn)


class QATStudent(nn.Module):
    """The prepared (fake-quant) graph: forward returns logits, taps keep the tapped outputs."""

    def __init__(
        self,
        graph: nn.Module,
        taps: list[tuple[str, str]],
        weight_bits: int,
        bn_literals: dict[str, tuple[float, float]],
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.weight_bits = weight_bits
        self.taps = [GraphTap(name, layout) for name, layout in taps]
        self.bn_literals = bn_literals
        self.freeze_bn = freeze_bn
        self._graph_training: bool | None = None  # the mode the graph's ops were switched to

    def train(self, mode: bool = True) -> QATStudent:
        """Switch dropout and BatchNorm (frozen BatchNorm stays in eval mode), keeping the
        student's BatchNorm momentum and eps through torchao's rewrite."""
        super().train(mode)
        if mode and self.freeze_bn:
            freeze_batchnorm(self.graph)
        restore_batchnorm_literals(self.graph, self.bn_literals)
        self._graph_training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self._graph_training is not self.training:
            # The `training` flag was set without `.train()` (Lightning restores the modes after
            # validation that way), which leaves the graph's ops in their other mode.
            self.train(self.training)
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

    def quantized_modules(self) -> list[str]:
        """Student submodules (plain names) whose conv or linear weights are fake-quantized."""
        weighted = (
            torch.ops.aten.conv1d.default,
            torch.ops.aten.conv2d.default,
            torch.ops.aten.linear.default,
        )
        names = []
        for node in self.graph.graph.nodes:
            if node.target in weighted and node.args[1].op == "call_module":
                stack = list(node.meta.get("nn_module_stack", {}).values())
                names.append(stack[-1][0].removeprefix("student.") if stack else node.name)
        return names

    def convert(self) -> nn.Module:
        """The int8 (Q/DQ) torch model of the bare student: logits only, taps dropped."""
        import copy

        require("torchao", "qat", "QAT (torchao pt2e)")
        from torch.utils._pytree import tree_structure
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        graph = copy.deepcopy(self.graph)
        graph.eval()
        restore_batchnorm_literals(graph, self.bn_literals)
        converted = convert_pt2e(graph)
        output = next(n for n in converted.graph.nodes if n.op == "output")
        logits = output.args[0][0]
        output.args = ((logits,),)
        codegen = converted.graph._codegen
        codegen.pytree_info = codegen.pytree_info._replace(out_spec=tree_structure(0))
        converted.graph.eliminate_dead_code()
        converted.recompile()
        return converted


__all__ = [
    "FAKE_QUANT_SCOPES",
    "GraphTap",
    "QATStudent",
    "TappedStudent",
    "float_conv_names",
    "prepare_qat",
    "quantization_config",
    "x86_quantizer",
]
