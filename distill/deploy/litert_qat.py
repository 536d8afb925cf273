"""Eager fake-quant that follows LiteRT's full-integer int8 graph (`qat.fake_quant=litert`).

The PT2E scopes ("deployment", "all") follow onnxruntime's X86 scheme: they quantize the
output of every convolution, including a convolution followed by a SubSpectralNorm, which the
LiteRT file never materialises (`distill.deploy.litert_patterns.BandConv` folds the norm into
the convolution). Fine-tuning against that rounding trains for a graph that is not deployed.
`LiteRTFakeQuantStudent` puts fake-quant where the `.tflite` int8 file has int8 tensors:

- weights: every Conv1d/Conv2d/Linear weight, symmetric per output channel in [-127, 127]
  (TFLite's int8 weight range). Per-channel symmetric rounding commutes with a positive or
  negative per-channel scale, so rounding the unfolded weight is rounding the weight with its
  BatchNorm (or a SubSpectralNorm band's scale) folded in, as the file stores it.
- activations, per-tensor asymmetric int8: the input features, and module outputs that are
  tensors of the file: a leaf module's output unless the next module of its `nn.Sequential` is
  fused into it (BatchNorm, SubSpectralNorm, ReLU/ReLU6, Dropout, Identity), the output of
  every other composite module (a residual block's sum, the student's logits). Ranges are
  moving averages (factor `RANGE_MOMENTUM`) of each training batch's min and max, zero kept
  inside.
- BatchNorm (SubSpectralNorm's included) normalises with its running statistics and keeps
  them, as the file has them folded.

It is an emulation at module granularity: a functional operation inside a module's forward
(the first of a BC-ResBlock's two additions, the logistic of SiLU) is not rounded apart.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from distill.deploy.pt2e import GraphTap
from distill.errors import BadValueError

RANGE_MOMENTUM = 0.01  # moving-average factor of the activation ranges (torchao's default)
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
_BatchNorm = nn.modules.batchnorm._BatchNorm
_PARAMETRIZED = ".parametrizations.weight.original"
INPUT = "<input>"  # the features: the file's first operator takes them in int8


def _fused_into_previous(module: nn.Module) -> bool:
    """Whether LiteRT folds `module` into the operator before it (no int8 tensor between)."""
    from distill.students.subspectral_norm import SubSpectralNorm

    fused = (_BatchNorm, SubSpectralNorm, nn.ReLU, nn.ReLU6, nn.Identity)
    return isinstance(module, (*fused, nn.modules.dropout._DropoutNd))


def _is_leaf(module: nn.Module) -> bool:
    from distill.students.subspectral_norm import SubSpectralNorm

    return isinstance(module, SubSpectralNorm) or not any(True for _ in module.children())


def activation_points(student: nn.Module) -> list[str]:
    """Names of the submodules whose outputs are int8 tensors of the LiteRT file ("" is the
    student itself: its logits)."""
    fused_next: set[str] = set()
    for name, module in student.named_modules():
        if isinstance(module, nn.Sequential):
            kids = list(module.named_children())
            for (a, _), (_, b) in zip(kids, kids[1:]):
                if _fused_into_previous(b):
                    fused_next.add(f"{name}.{a}" if name else a)
    leaves = tuple(f"{p}." for p, m in student.named_modules() if p and _is_leaf(m))
    points = []
    for name, module in student.named_modules():
        inside_leaf = name.startswith(leaves)
        if inside_leaf or isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        if name in fused_next:
            continue
        points.append(name)
    return points


class PerChannelWeightFakeQuant(nn.Module):
    """Parametrization: symmetric per-output-channel fake-quant of a weight, straight-through
    gradient; `bits` 8 gives [-127, 127]."""

    def __init__(self, bits: int = 8) -> None:
        super().__init__()
        self.qmax = 2 ** (bits - 1) - 1

    def forward(self, weight: Tensor) -> Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / self.qmax).clamp_min(1e-12).float()
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.qmax, self.qmax)


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric int8 fake-quant with a moving-average min/max range (updated in
    training; set from the first batch it sees when it has none)."""

    def __init__(self, momentum: float = RANGE_MOMENTUM) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            return x
        lo, hi = x.detach().min().clamp(max=0.0), x.detach().max().clamp(min=0.0)
        if not bool(self.seen):
            self.low.copy_(lo)
            self.high.copy_(hi)
            self.seen.fill_(True)
        elif self.training:
            self.low.lerp_(lo, self.momentum)
            self.high.lerp_(hi, self.momentum)
        scale = float((self.high - self.low).clamp_min(1e-8)) / 255.0
        zero = int(round(-128 - float(self.low) / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, max(-128, min(127, zero)), -128, 127)


class LiteRTFakeQuantStudent(nn.Module):
    """A student with LiteRT-int8 fake-quant (see the module docstring); the same interface as
    `distill.deploy.pt2e.QATStudent` (taps, `student_state_dict`, counts)."""

    def __init__(self, student: nn.Module, taps: list[tuple[str, str]], weight_bits: int = 8):
        super().__init__()
        if not 2 <= weight_bits <= 8:
            raise BadValueError(f"qat.weight_bits={weight_bits!r}: expected 2..8 (int8 storage)")
        self.student = student
        self.weight_bits = weight_bits
        modules = dict(student.named_modules())
        self._plain_keys = list(student.state_dict())
        self._points = activation_points(student)
        self._weighted = [n for n, m in modules.items() if isinstance(m, _WEIGHTED)]
        for name in self._weighted:
            parametrize.register_parametrization(
                modules[name], "weight", PerChannelWeightFakeQuant(weight_bits)
            )
        self.ranges = nn.ModuleDict(
            {_key(name): ActivationFakeQuant() for name in [INPUT, *self._points]}
        )
        self._handles = [student.register_forward_pre_hook(self._round_input)]
        self._handles += [
            modules[name].register_forward_hook(self._round(_key(name))) for name in self._points
        ]
        self.taps = [GraphTap(name, layout) for name, layout in taps]
        missing = [t.module_name for t in self.taps if t.module_name not in modules]
        if missing:
            raise KeyError(f"{type(student).__name__} has no submodule named {missing[0]!r}")
        for tap in self.taps:  # after the rounding hooks: the taps read the rounded tensor
            self._handles.append(modules[tap.module_name].register_forward_hook(_storing(tap)))
        self._norms = [m for m in modules.values() if isinstance(m, _BatchNorm)]

    def _round(self, key: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            return self.ranges[key](output) if isinstance(output, Tensor) else output

        return hook

    def _round_input(self, module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.ranges[INPUT](inputs[0]), *inputs[1:])

    def train(self, mode: bool = True) -> LiteRTFakeQuantStudent:
        """Dropout follows `mode`; every BatchNorm stays in eval mode (running statistics)."""
        super().train(mode)
        for norm in self._norms:
            norm.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self.training and any(norm.training for norm in self._norms):
            self.train(True)  # Lightning may set `training` flags without `.train()`
        return self.student(x)

    def student_state_dict(self) -> dict[str, Tensor]:
        """Float weights and BatchNorm statistics under the plain student's names, in its
        order."""
        state = {
            k.replace(_PARAMETRIZED, ".weight"): v for k, v in self.student.state_dict().items()
        }
        return {k: state[k].detach().cpu().clone() for k in self._plain_keys}

    def fake_quant_count(self) -> int:
        """Number of fake-quantized tensors (weights and activations)."""
        return len(self._weighted) + len(self.ranges)

    def quantized_modules(self) -> list[str]:
        """Student submodules whose weights are fake-quantized."""
        return list(self._weighted)


def _key(name: str) -> str:
    return name.replace(".", "/") or "<logits>"


def _storing(tap: GraphTap) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        tap.store(output[0] if isinstance(output, (tuple, list)) else output)

    return hook


def prepare_litert_qat(
    student: nn.Module, taps: list[tuple[str, str]], weight_bits: int = 8
) -> LiteRTFakeQuantStudent:
    """`student` (modified in place) with LiteRT-int8 fake-quant and the named taps."""
    return LiteRTFakeQuantStudent(student, taps, weight_bits)


__all__ = [
    "ActivationFakeQuant",
    "LiteRTFakeQuantStudent",
    "PerChannelWeightFakeQuant",
    "activation_points",
    "prepare_litert_qat",
]
