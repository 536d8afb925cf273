"""Optional dependencies: import one, or say which extra of `temporal-distill` installs it.

The core install (`pip install temporal-distill`) holds what training, evaluation and the students
need. Heavy packages used by one feature only (Hugging Face teachers, wandb, TensorBoard, ONNX
export and quantization, speech synthesis, report plots, LiteRT) live in optional extras; their
import sites call `require` so that a missing one fails with one line naming the extra.
"""

from __future__ import annotations

import importlib
import types

from distill.errors import MissingExtraError


def require(module: str, extra: str, feature: str) -> types.ModuleType:
    """Import `module` (a dotted name) and return it, or raise `MissingExtraError` naming `extra`.

    `feature` says what needs it, e.g. ``require("onnx", "export", "distill export")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # A missing dependency of the package itself is also fixed by installing the extra; the
        # original error stays chained (shown by `distill --debug`).
        raise MissingExtraError(
            f"{feature} needs {module}: pip install 'temporal-distill[{extra}]'"
        ) from err


__all__ = ["require"]
