"""Registry of loss terms: each term declares, next to its code, its config, what it needs
(teacher, tapped features, the student's own attention, spans, teacher hidden states, the
student's per-step outputs), its arm tokens for `distill compare` and its default arm weight.
Everything that used to name terms (the weighted sum, the module's taps, arms, the teacher
cache, eval, QAT) reads it instead.

Custom terms plug in from a recipe by dotted path, `losses.custom.<name>.target`, as custom
students do: a class taking `LossInputs` and returning a scalar, whose needs are class
attributes (`needs_teacher`, `needs_features`, `needs_student_attention`, `needs_spans`,
`needs_hidden`, `needs_frames`; all False unless set)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from distill.config.schema import CustomLossConfig
from distill.dotted import DottedMessages, import_class
from distill.errors import BadValueError

NEEDS = ("teacher", "features", "student_attention", "spans", "hidden", "frames")
# Arm tokens that switch every distilling term off: `clip` is the name of `none` in the
# comparison of per-step training (docs/timed.md): today's clip training, the baseline.
PLAIN_ARMS = ("none", "clip")
Need = bool | Callable[[Any], bool]


@dataclass(frozen=True)
class LossContext:
    """What a term may need to build itself besides its config: the task ('single_label' or
    'multi_label'), the tapped feature width C of c', the teacher's hidden width (or None), the
    class names and, for per-step terms, the steps the per-step output pools over (None: all
    steps heard so far)."""

    task: str
    channels: int | None = None
    teacher_dim: int | None = None
    class_names: tuple[str, ...] | None = None
    frame_window: int | None = None


@dataclass(frozen=True)
class LossSpec:
    """One loss term's declaration.

    build(term_config, LossContext) -> nn.Module with forward(LossInputs) -> scalar Tensor.
    config: the term's dataclass in the recipe schema (`losses.<name>`), None for custom terms.
    needs_*: a bool, or a callable of the term's config returning one (e.g. temporal KD needs the
    teacher only for the targets `teacher` and `shuffled`).
    arm_tokens: arm token of `distill compare` -> settings of the term that token sets besides
    its weight, e.g. {"span": {"target": "span"}}; controls: the tokens that are control arms.
    default_weight: the weight an arm gives the term when the recipe leaves it at 0.
    distills: False for the task loss (always on, outside the convex sum, kept by `eval`).
    order: terms are built (parameter init draws random numbers) and summed by ascending order.
    """

    name: str
    build: Callable[[Any, LossContext], nn.Module]
    config: type | None = None
    needs_teacher: Need = False
    needs_features: Need = False
    needs_student_attention: Need = False
    needs_spans: Need = False
    needs_hidden: Need = False
    needs_frames: Need = False
    arm_tokens: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    controls: tuple[str, ...] = ()
    default_weight: float = 0.0
    distills: bool = True
    order: int = 100

    def needs(self, term_cfg: Any) -> frozenset[str]:
        """What the term needs (a subset of NEEDS) under this config of it."""
        out = set()
        for what in NEEDS:
            need = getattr(self, f"needs_{what}")
            if need(term_cfg) if callable(need) else need:
                out.add(what)
        return frozenset(out)


_REGISTRY: dict[str, LossSpec] = {}


def register_loss(name: str, **declaration: Any) -> Callable[[Callable], Callable]:
    """Decorator registering `build(term_config, LossContext) -> nn.Module` as the built-in term
    `name`; `declaration` holds the other LossSpec fields. The term reads `losses.<name>`, so its
    config dataclass must also be a field of the schema's LossesConfig."""

    def decorate(build: Callable) -> Callable:
        spec = LossSpec(name=name, build=build, **declaration)
        _check_new(spec)
        _REGISTRY[name] = spec
        return build

    return decorate


def _check_new(spec: LossSpec) -> None:
    if spec.name in _REGISTRY:
        raise BadValueError(f"loss term {spec.name!r} is already registered")
    taken = {t for s in _REGISTRY.values() for t in s.arm_tokens} | set(PLAIN_ARMS)
    clash = sorted(taken & set(spec.arm_tokens))
    if clash:
        raise BadValueError(f"loss term {spec.name!r}: arm token(s) {clash} already taken")
    if not set(spec.controls) <= set(spec.arm_tokens):
        raise BadValueError(f"loss term {spec.name!r}: controls must be among its arm tokens")
    if spec.arm_tokens and not (spec.distills and spec.default_weight > 0):
        raise BadValueError(f"loss term {spec.name!r}: arm tokens need a default_weight > 0")
    keys = {k for settings in spec.arm_tokens.values() for k in settings}
    fields = {f.name for f in dataclasses.fields(spec.config)} if spec.config else set()
    if not keys <= fields:
        raise BadValueError(
            f"loss term {spec.name!r}: arm tokens set {sorted(keys - fields)}, which its config "
            f"{getattr(spec.config, '__name__', None)} does not have"
        )


def specs() -> list[LossSpec]:
    """The registered (built-in) terms in the order they are built and summed."""
    return sorted(_REGISTRY.values(), key=lambda s: s.order)


def available() -> list[str]:
    """Names of the registered terms, in build order."""
    return [s.name for s in specs()]


def spec(name: str) -> LossSpec:
    """The declaration of registered term `name`."""
    if name not in _REGISTRY:
        raise BadValueError(f"unknown loss term {name!r}; registered: {', '.join(available())}")
    return _REGISTRY[name]


@dataclass(frozen=True)
class ActiveTerm:
    """A term the recipe switches on: its name, declaration, config node and weight."""

    name: str
    spec: LossSpec
    cfg: Any
    weight: float

    @property
    def needs(self) -> frozenset[str]:
        return self.spec.needs(self.cfg)

    def build(self, context: LossContext) -> nn.Module:
        return self.spec.build(self.cfg, context)


def active_terms(losses: DictConfig) -> list[ActiveTerm]:
    """The recipe's terms in build order: the non-distilling (task) terms always, the others
    when their weight is > 0, then the custom terms (weight > 0) in recipe order. Every custom
    target is imported and checked, also at weight 0, so that a bad one fails before any work."""
    active = []
    for s in specs():
        term_cfg = losses.get(s.name)
        if term_cfg is None:  # a checkpoint written before the term existed
            continue
        weight = float(term_cfg.weight)
        if weight > 0 or not s.distills:
            active.append(ActiveTerm(s.name, s, term_cfg, weight))
    for name, raw in (losses.get("custom") or {}).items():
        entry = _custom_entry(str(name), raw)
        term_spec = custom_spec(str(name), entry)
        if entry.weight > 0:
            active.append(ActiveTerm(str(name), term_spec, entry, entry.weight))
    return active


def terms_needing(losses: DictConfig, what: str) -> list[str]:
    """Names of the active terms that need `what` (one of NEEDS)."""
    if what not in NEEDS:
        raise BadValueError(f"unknown loss need {what!r}; known: {', '.join(NEEDS)}")
    return [t.name for t in active_terms(losses) if what in t.needs]


def loss_needs(losses: DictConfig) -> frozenset[str]:
    """Everything the recipe's active terms need together (a subset of NEEDS)."""
    return frozenset().union(*(t.needs for t in active_terms(losses)))


def distillation_off(losses: DictConfig) -> dict[str, Any]:
    """A `losses` update that sets every distilling term's weight, custom ones included, to 0."""
    off: dict[str, Any] = {s.name: {"weight": 0} for s in specs() if s.distills}
    custom = losses.get("custom") or {}
    if custom:
        off["custom"] = {str(name): {"weight": 0} for name in custom}
    return off


def loss_signature(losses: DictConfig) -> dict[str, Any]:
    """What decides the built terms: the weighting and each active term's config (plain)."""
    out: dict[str, Any] = {"weighting": losses.weighting}
    for term in active_terms(losses):
        out[term.name] = OmegaConf.to_container(term.cfg, resolve=True)
    return out


# -- custom terms by dotted path -------------------------------------------------------------
def _custom_entry(name: str, raw: Any) -> DictConfig:
    """`losses.custom.<name>` checked against CustomLossConfig (also when the config came
    untyped, e.g. from a checkpoint), its target given."""
    where = f"losses.custom.{name}"
    if not name.isidentifier() or name == "loss" or name in _REGISTRY:
        raise BadValueError(
            f"{where}: the name must be a Python identifier other than 'loss' and the built-in "
            f"terms ({', '.join(available())}), given {name!r}"
        )
    try:
        entry = OmegaConf.merge(OmegaConf.structured(CustomLossConfig), raw)
    except OmegaConfBaseException as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadValueError(f"{where}: {first}") from None
    if OmegaConf.is_missing(entry, "target"):
        raise BadValueError(
            f"{where}.target is required: a dotted path such as 'my_pkg.losses.MyTerm'"
        )
    return entry


_EXAMPLE = "e.g. 'my_pkg.losses.MyTerm'"
_TARGET_MESSAGES = DottedMessages(
    not_dotted="{where}: {path!r} is not a dotted path to a class (" + _EXAMPLE + ")",
    unimportable="{where}: cannot import {path!r} ({error}); give an importable dotted path ("
    + _EXAMPLE
    + ")",
    missing="{where}: module {module!r} has no attribute {attr!r}",
    wrong_kind="{where}: {path!r} is not an nn.Module class (got {kind}); a loss "
    "term is a class whose forward takes LossInputs",
)


def _import_target(where: str, path: str) -> type:
    """The nn.Module class at dotted `path` (a BadValueError naming `where` otherwise)."""
    return import_class(where, path, nn.Module, _TARGET_MESSAGES)


def custom_spec(name: str, entry: DictConfig) -> LossSpec:
    """The declaration of custom term `name` from its class's attributes."""
    target = _import_target(f"losses.custom.{name}.target", entry.target)
    needs = {f"needs_{what}": bool(getattr(target, f"needs_{what}", False)) for what in NEEDS}

    def build(term_cfg: DictConfig, context: LossContext) -> nn.Module:
        return _construct(name, target, term_cfg, context)

    return LossSpec(name=name, build=build, **needs)


def _construct(name: str, target: type, entry: DictConfig, context: LossContext) -> nn.Module:
    """`target.from_context(context, **kwargs)` when the class defines it, else
    `target(**kwargs)`; kwargs the signature does not take are refused by name."""
    kwargs = OmegaConf.to_container(entry.kwargs, resolve=True) if entry.kwargs else {}
    factory = getattr(target, "from_context", None)
    args: tuple[Any, ...] = (context,) if factory is not None else ()
    factory = factory or target
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as err:
        raise BadValueError(
            f"losses.custom.{name}.kwargs: {target.__name__} does not take {kwargs} ({err})"
        ) from None
    return factory(*args, **kwargs)


__all__ = [
    "NEEDS",
    "PLAIN_ARMS",
    "ActiveTerm",
    "LossContext",
    "LossSpec",
    "active_terms",
    "available",
    "custom_spec",
    "distillation_off",
    "loss_needs",
    "loss_signature",
    "register_loss",
    "spec",
    "specs",
    "terms_needing",
]
