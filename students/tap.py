"""Read a student's time features (B, T', C) from a named submodule with a forward hook."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from distill.errors import BadValueError


def _check_layout(layout: str) -> None:
    if not isinstance(layout, str) or set(layout) - set("BCFT"):
        raise BadValueError(f"tap layout {layout!r} may only use the letters B, C, F and T")
    for axis in "BCT":
        if layout.count(axis) != 1:
            raise BadValueError(
                f"tap layout {layout!r} must name axis {axis!r} exactly once "
                "(B batch, C channels, T time; F frequency may appear any number of times)"
            )


def to_time_features(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """Convert a tapped tensor with axes `layout` (e.g. "BCFT", "BTC") to (B, T', C).

    Frequency axes (F) are averaged away.
    """
    _check_layout(layout)
    if isinstance(tensor, (tuple, list)):
        tensor = tensor[0]
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tapped output is {type(tensor).__name__}, expected a tensor")
    if tensor.dim() != len(layout):
        raise BadValueError(
            f"tap layout {layout!r} expects a {len(layout)}-D tensor, got shape "
            f"{tuple(tensor.shape)}"
        )
    f_axes = [i for i, axis in enumerate(layout) if axis == "F"]
    if f_axes:
        tensor = tensor.mean(dim=f_axes)
        layout = layout.replace("F", "")
    return tensor.permute(layout.index("B"), layout.index("T"), layout.index("C"))


def _missing_module(model: nn.Module, name: str) -> KeyError:
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    if len(names) > 80:
        shallow = [n for n in names if n.count(".") <= 1]
        listing = ", ".join(shallow) + f" (showing {len(shallow)} of {len(names)} names)"
    else:
        listing = ", ".join(names)
    return KeyError(
        f"{type(model).__name__} has no submodule named {name!r}.{hint} Valid names: {listing}"
    )


class FeatureTap:
    """Forward hook on `model.<module_name>` that keeps its latest output.

    `features()` returns that output as (B, T', C). Use `remove()` (or a `with` block) to detach.
    """

    def __init__(self, model: nn.Module, module_name: str, layout: str) -> None:
        _check_layout(layout)
        modules = dict(model.named_modules())
        if not module_name or module_name not in modules:
            raise _missing_module(model, module_name)
        self.module_name = module_name
        self.layout = layout
        self._output: Any = None
        self._handle = modules[module_name].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._output = output[0] if isinstance(output, (tuple, list)) else output

    @property
    def output(self) -> torch.Tensor:
        """The raw latest output of the tapped module (element 0 for tuples)."""
        if self._output is None:
            raise RuntimeError(
                f"tap on {self.module_name!r} has seen no forward pass yet (or was cleared)"
            )
        return self._output

    def features(self) -> torch.Tensor:
        """The latest tapped output as (B, T', C), still attached to the autograd graph."""
        return to_time_features(self.output, self.layout)

    def clear(self) -> None:
        """Forget the stored output (frees its memory)."""
        self._output = None

    def remove(self) -> None:
        """Detach the hook and forget the stored output; safe to call twice."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._output = None

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
