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
