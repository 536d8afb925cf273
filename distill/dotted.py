"""Importing a user's class from a dotted path (`my_pkg.module.Class`) named in a recipe.

Each caller words its own one-line messages: templates formatted with the fields `where`,
`path`, `module`, `attr`, `error` (the import error's first line) and `kind` (the type name of
what the path named when it is not a suitable class).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from distill.errors import BadValueError


@dataclass(frozen=True)
class DottedMessages:
    """The BadValueError message templates of `import_class`, one per way a path can fail."""

    not_dotted: str
    unimportable: str
    missing: str
    wrong_kind: str


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class DottedImportError(BadValueError):
    """A dotted path whose module does not import or lacks the attribute; `detail` says which,
    as ' (importing module ...)' or ' (module ... has no attribute ...)', for the caller's
    message."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path!r} cannot be imported{detail}")
        self.path, self.detail = path, detail


def import_dotted(path: str) -> object:
    """The object at dotted `path` (`module.attr`); DottedImportError when there is none."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise DottedImportError(path, " (not a dotted path)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DottedImportError(
            path, f" (importing module {module_name!r} failed: {first_line(err)})"
        ) from None
    if not hasattr(module, attr):
        raise DottedImportError(path, f" (module {module_name!r} has no attribute {attr!r})")
    return getattr(module, attr)


def import_class(where: str, path: str, base: type, messages: DottedMessages) -> type:
    """The subclass of `base` at dotted `path`; a BadValueError worded by `messages` otherwise."""
    module_name, _, attr = path.rpartition(".")
    fields = {"where": where, "path": path, "module": module_name, "attr": attr}
    if not module_name:
        raise BadValueError(messages.not_dotted.format(**fields))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BadValueError(messages.unimportable.format(**fields, error=first_line(err))) from None
    target = getattr(module, attr, None)
    if target is None:
        raise BadValueError(messages.missing.format(**fields))
    if not (inspect.isclass(target) and issubclass(target, base)):
        kind = type(target).__name__
        raise BadValueError(messages.wrong_kind.format(**fields, kind=kind))
    return target
