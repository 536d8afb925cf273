"""The expected errors of the framework: bad input named by file, key or value, one line each.

Every error a user can cause (a misspelt recipe key, a value out of range, a missing or unreadable
file, a stale cache, an unknown student) is a `DistillError`. The command line prints its message
as one line and exits with status 2; a traceback is printed only with `distill --debug`. Each
subclass also derives from the built-in exception it refines, so `except ValueError` still works.
"""

from __future__ import annotations

import pickle


class DistillError(Exception):
    """An expected error whose message names what is wrong and what was expected."""


class BadValueError(DistillError, ValueError):
    """A value (recipe key, option, argument, data content) that is not what is expected."""


class MissingFileError(DistillError, FileNotFoundError):
    """A file or folder that the command needs does not exist."""


class UsageError(DistillError, RuntimeError):
    """A combination of options or a state of the files that the command cannot work with."""


class MissingExtraError(UsageError, ImportError):
    """An optional dependency that the asked-for feature needs is not installed; the message
    names the extra of `temporal-distill` that installs it."""


class UnsafeArtifactError(DistillError, pickle.UnpicklingError):
    """A checkpoint or student file that could run code when loaded (a pickle holding more than
    tensors and plain data, or a student in the old pickled format): refused, never unpickled."""


__all__ = [
    "BadValueError",
    "DistillError",
    "MissingExtraError",
    "MissingFileError",
    "UnsafeArtifactError",
    "UsageError",
]
