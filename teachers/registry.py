"""Kind -> class registry of the teachers, plus custom teacher classes by dotted path.

Each teacher class declares itself with `@register_teacher(kind, ...)`; `teacher.kind` in a
recipe is a registered kind or the dotted path of a `Teacher` subclass (e.g.
`my_pkg.teachers.MyTeacher`), imported on first use. The class provides
`from_pretrained(path, **options)` (load), and `build(class_names, **options)` (a fresh one)
when it can be trained from scratch; `start_from(source, class_names, **options)` (fine-tune a
saved one) has a default in `Teacher`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from distill.teachers.base import Teacher

from distill.dotted import DottedImportError, import_dotted
from distill.errors import BadValueError
from distill.names import did_you_mean, register_name


@dataclass(frozen=True)
class TeacherSpec:
    """What the pipeline needs to know about a teacher kind besides its class.

    hf_format: saved and loaded in the Hugging Face format: `teacher.path` (and
        `teacher.kwargs.init_from`) may be a local model directory or a hub id in the local
        cache, and the recipe's `teacher.kwargs` are options of loading (pooling, ...).
        Otherwise `teacher.path` is a folder written by `save_pretrained` and `teacher.kwargs`
        only shape a new teacher (`distill teach`).
    from_scratch: `distill teach` can build a fresh one (`cls.build`); otherwise it needs
        `teacher.kwargs.init_from`.
    recipe_frontend: a fresh one takes the recipe's `frontend` section unless its kwargs give one.
    """

    kind: str
    cls: type[Teacher]
    hf_format: bool = False
    from_scratch: bool = True
    recipe_frontend: bool = False

    @property
    def where(self) -> str:
        """What `teacher.path` / `init_from` may name, in words."""
        if self.hf_format:
            return "a local Hugging Face model directory or a cached hub id"
        return "a teacher directory written by save_pretrained"


_REGISTRY: dict[str, TeacherSpec] = {}


def register_teacher(
    kind: str,
    *,
    hf_format: bool = False,
    from_scratch: bool = True,
    recipe_frontend: bool = False,
) -> Callable[[type[Teacher]], type[Teacher]]:
    """Class decorator registering a `Teacher` subclass under `kind` (see `TeacherSpec`)."""

    def decorate(cls: type[Teacher]) -> type[Teacher]:
        spec = TeacherSpec(kind, cls, hf_format, from_scratch, recipe_frontend)
        register_name(_REGISTRY, kind, spec, "teacher kind")
        return cls

    return decorate


def available() -> list[str]:
    """Sorted registered teacher kinds."""
    return sorted(_REGISTRY)


def _unknown(kind: str, detail: str = "") -> BadValueError:
    hint = did_you_mean(kind, available())
    return BadValueError(
        f"unknown teacher kind {kind!r}{detail}.{hint} Valid kinds: {', '.join(available())}; "
        "or the dotted path of a Teacher class such as 'my_pkg.teachers.MyTeacher'"
    )


def _import_class(path: str) -> type[Teacher]:
    try:
        cls = import_dotted(path)
    except DottedImportError as err:
        raise _unknown(path, err.detail) from None
    if not (isinstance(cls, type) and issubclass(cls, Teacher)):
        raise BadValueError(
            f"teacher kind {path!r} is {cls!r}, not a subclass of distill.teachers.Teacher"
        )
    return cls


def spec(kind: str) -> TeacherSpec:
    """The spec of a registered kind, or of the Teacher class at a dotted path (the class's own
    registration when it has one; otherwise a saved-folder teacher, trainable from scratch when
    it defines `build`)."""
    if kind in _REGISTRY:
        return _REGISTRY[kind]
    if "." not in kind:
        raise _unknown(kind)
    cls = _import_class(kind)
    for registered in _REGISTRY.values():
        if registered.cls is cls:
            return registered
    return TeacherSpec(kind=kind, cls=cls, from_scratch=cls.build.__func__ is not _BASE_BUILD)


def kind_of_saved(meta: dict, where: str) -> str:
    """The kind of a saved teacher from its config.json: our `teacher_kind`, or for a plain
    Hugging Face directory (`model_type`, no `teacher_kind`) the one Hugging Face-format kind."""
    kind = meta.get("teacher_kind")
    if kind is None and "model_type" in meta:
        hf = [s.kind for s in _REGISTRY.values() if s.hf_format]
        if len(hf) != 1:
            raise BadValueError(
                f"{where}: a Hugging Face directory, and the kinds that read them are {hf}: "
                "give the teacher kind"
            )
        kind = hf[0]
    if not isinstance(kind, str):
        raise BadValueError(
            f"{where}: cannot tell the teacher kind (teacher_kind {kind!r}, no model_type); "
            f"valid kinds: {', '.join(available())}"
        )
    return kind


_BASE_BUILD = Teacher.build.__func__
