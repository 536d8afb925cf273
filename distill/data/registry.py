"""Name -> builder registry of the data sets behind `data.name`, plus custom ones by dotted path.

Each data set declares itself beside its class with `@register_dataset(name, ...)` on a builder
`build(cfg, split, **common) -> ClipDataset`: `cfg` is the recipe's `DataConfig`, `common` the
options every data set takes (sample_rate, clip_seconds, seed, train_variants, skip_bad_files,
limit, augment). `data.name` is a registered name or the dotted path of such a builder (e.g.
`my_pkg.data.build_my_set`), imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distill.config.schema import DataConfig
from distill.data.base import ClipDataset
from distill.dotted import DottedImportError, import_dotted
from distill.errors import BadValueError
from distill.names import did_you_mean, register_name

DatasetBuilder = Callable[..., ClipDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """What the data module needs to know about a data set besides how to build a split.

    task: the one task it serves (single_label | multi_label), or None when data.task decides.
    classes_from: the file that fixes its classes (data.classes must then be 'all'), or None.
    class_names: `class_names(cfg)` -> the class list without building a split, or None to read
        it from the training split.
    """

    name: str
    build: DatasetBuilder
    task: str | None = None
    classes_from: str | None = None
    class_names: Callable[[DataConfig], list[str]] | None = None

    def check(self, cfg: DataConfig) -> None:
        """Refuse a data section this data set cannot serve (task, classes)."""
        if self.task is not None and cfg.task != self.task:
            raise BadValueError(
                f"data.task must be {self.task} for {self.name}, given {cfg.task!r}"
            )
        if self.classes_from is not None and str(cfg.classes).strip() != "all":
            raise BadValueError(
                f"data.classes must be 'all' for {self.name} ({self.classes_from} fixes the "
                f"classes), given {cfg.classes!r}"
            )

    def split(self, cfg: DataConfig, split: str, **common: Any) -> ClipDataset:
        """The dataset of one split."""
        dataset = self.build(cfg, split, **common)
        if not isinstance(dataset, ClipDataset):
            raise BadValueError(
                f"data.name {self.name!r} built a {type(dataset).__name__} for split {split!r}, "
                "not a distill.data.base.ClipDataset"
            )
        return dataset


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    *,
    task: str | None = None,
    classes_from: str | None = None,
    class_names: Callable[[DataConfig], list[str]] | None = None,
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Decorator registering a builder `build(cfg, split, **common)` under `name` (see
    `DatasetSpec` for the options)."""

    def decorate(build: DatasetBuilder) -> DatasetBuilder:
        spec = DatasetSpec(name, build, task, classes_from, class_names)
        register_name(_REGISTRY, name, spec, "data set name")
        return build

    return decorate


def available() -> list[str]:
    """Sorted registered data set names."""
    return sorted(_REGISTRY)


def _unknown(name: str, detail: str = "") -> BadValueError:
    hint = did_you_mean(name, available())
    return BadValueError(
        f"data.name {name!r} is not a registered data set{detail}.{hint} Registered: "
        f"{', '.join(available())}; or the dotted path of a builder such as "
        "'my_pkg.data.build_my_set'"
    )


def spec(name: str) -> DatasetSpec:
    """The spec of a registered data set, or of the builder at a dotted path (its own
    registration when it has one; otherwise data.task decides and the training split tells
    the classes)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if "." not in name:
        raise _unknown(name)
    module_name, _, attr = name.rpartition(".")
    try:
        build = import_dotted(name)
    except DottedImportError as err:
        if "importing module" in err.detail:
            raise _unknown(name, err.detail) from None
        build = None
    if not callable(build):
        raise _unknown(name, f" (module {module_name!r} has no callable {attr!r})")
    for registered in _REGISTRY.values():
        if registered.build is build:
            return registered
    return DatasetSpec(name=name, build=build)
