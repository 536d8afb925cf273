"""Names in the registries (students, teachers, data sets, loss terms): registering a name once
and suggesting the registered names close to a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, MutableMapping
from typing import TypeVar

from distill.errors import BadValueError

T = TypeVar("T")


def register_name(
    table: MutableMapping[str, T],
    name: str,
    item: T,
    what: str,
    *,
    taken: Iterable[str] = (),
    dotted_ok: bool = False,
) -> None:
    """Put `item` in `table` under `name`; a BadValueError naming the `what` when the name is
    registered already (in `table` or `taken`) or holds a '.' (reserved for dotted import paths,
    unless `dotted_ok`)."""
    if name in table or name in set(taken):
        raise BadValueError(f"{what} {name!r} is already registered")
    if not dotted_ok and "." in name:
        raise BadValueError(f"{what} {name!r} must not contain '.' (dotted paths)")
    table[name] = item


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """' Did you mean: a, b?' with the choices close to `name`, or '' when none is."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""
