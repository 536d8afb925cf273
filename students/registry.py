"""Name -> factory registry of the built-in students, plus creation of custom ones by path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from distill.dotted import DottedImportError, import_dotted
from distill.errors import BadValueError, DistillError
from distill.names import did_you_mean, register_name

StudentFactory = Callable[..., nn.Module]


class UnknownStudentError(DistillError, ValueError):
    """A student name that is neither registered nor an importable dotted path."""


@dataclass(frozen=True)
class StudentSpec:
    """What the framework needs to know about a student besides its code.

    default_tap: dotted submodule name whose output carries time (None: the recipe must say).
    tap_layout: axes of the tapped tensor, e.g. "BCFT", "BTC" (tuples: element 0 is read).
    attention_tap: submodule emitting the student's own attention (B, heads, T'), or None.
    paper_input: (F, T) of the input used in the model's paper, or None when there is none.
    """

    name: str
    factory: StudentFactory
    default_tap: str | None = None
    tap_layout: str | None = None
    attention_tap: str | None = None
    paper_input: tuple[int, int] | None = None
    aliases: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, StudentSpec] = {}
_ALIASES: dict[str, str] = {}


def register_student(
    name: str,
    *,
    default_tap: str,
    tap_layout: str,
    attention_tap: str | None = None,
    paper_input: tuple[int, int] | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[StudentFactory], StudentFactory]:
    """Decorator registering `factory(num_classes=..., n_features=..., **kwargs)` under `name`."""

    def decorate(factory: StudentFactory) -> StudentFactory:
        spec = StudentSpec(
            name=name,
            factory=factory,
            default_tap=default_tap,
            tap_layout=tap_layout,
            attention_tap=attention_tap,
            paper_input=paper_input,
            aliases=tuple(aliases),
        )
        for alias in aliases:  # checked before anything is registered
            if alias in _REGISTRY or alias in _ALIASES or alias == name:
                raise BadValueError(f"student name {alias!r} is already registered")
        register_name(_REGISTRY, name, spec, "student name", taken=_ALIASES, dotted_ok=True)
        for alias in aliases:
            register_name(_ALIASES, alias, name, "student name", taken=_REGISTRY, dotted_ok=True)
        return factory

    return decorate


def available() -> list[str]:
    """Sorted canonical names of the registered students (aliases not included)."""
    return sorted(_REGISTRY)


def _canonical(name: str) -> str | None:
    if name in _REGISTRY:
        return name
    return _ALIASES.get(name)


def _unknown(name: str, detail: str = "") -> UnknownStudentError:
    names = sorted([*_REGISTRY, *_ALIASES])
    hint = did_you_mean(name, names, n=5)
    return UnknownStudentError(
        f"unknown student {name!r}{detail}.{hint} Available students: {', '.join(available())}; "
        "or give an importable dotted path such as 'my_pkg.models.MyNet'."
    )


def _import_path(path: str) -> StudentFactory:
    if "." not in path:
        raise _unknown(path)
    try:
        factory = import_dotted(path)
    except DottedImportError as err:
        raise _unknown(path, err.detail) from None
    if not callable(factory):
        raise UnknownStudentError(f"student {path!r} is not callable (got {type(factory)})")
    return factory


def spec(name: str) -> StudentSpec:
    """Metadata of a registered student, or blank metadata (all None) for a dotted path."""
    canonical = _canonical(name)
    if canonical is not None:
        return _REGISTRY[canonical]
    if "." not in name:
        raise _unknown(name)
    return StudentSpec(name=name, factory=_import_path(name))


# attribute under which `create` records how a student was built (see `created_with`)
CONFIG_ATTR = "_distill_student"


def dotted_name(factory: StudentFactory) -> str:
    """The import path `module.QualName` of a class or function (how `spec` finds it again)."""
    return f"{factory.__module__}.{factory.__qualname__}"


def create(
    name: str | StudentFactory, num_classes: int, n_features: int = 40, **kwargs: object
) -> nn.Module:
    """Build student `name` (registered name, alias, dotted import path, or the class itself,
    called as `cls(num_classes=..., n_features=..., **kwargs)`). The model remembers how it was
    built (`created_with`), so that `students.save_pretrained` can rebuild it."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise BadValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(n_features, int) or n_features < 1:
        raise BadValueError(f"n_features must be a positive int, got {n_features!r}")
    if isinstance(name, str):
        factory = spec(name).factory
        recorded = _canonical(name) or name
    elif callable(name):
        factory, recorded = name, dotted_name(name)
    else:
        raise UnknownStudentError(f"student must be a name or a class, got {type(name).__name__}")
    model = factory(num_classes=num_classes, n_features=n_features, **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"student {recorded!r} returned {type(model).__name__}, not an nn.Module")
    config = {"name": recorded, "num_classes": num_classes, "n_features": n_features}
    object.__setattr__(model, CONFIG_ATTR, {**config, "kwargs": dict(kwargs)})
    return model


def created_with(model: nn.Module) -> dict | None:
    """How `create` built `model` (name, num_classes, n_features, kwargs), or None."""
    config = getattr(model, CONFIG_ATTR, None)
    return None if config is None else {**config, "kwargs": dict(config["kwargs"])}
