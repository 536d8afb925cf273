"""What teach, fit and qat return and write as results.json / qat_results.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from distill.errors import BadValueError
from distill.files import write_json


class _Result:
    """JSON round trip shared by the result types (field order is the file's key order)."""

    OMIT_IF_NONE: tuple[str, ...] = ()  # fields left out of the file when None
    NOT_WRITTEN: tuple[str, ...] = ()  # in-memory fields (objects), never written

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        data = {k: v for k, v in data.items() if k not in self.NOT_WRITTEN}
        return {k: v for k, v in data.items() if v is not None or k not in self.OMIT_IF_NONE}

    def write(self, *paths: str | Path) -> None:
        """Write the result as JSON to each path (atomically)."""
        for path in paths:
            write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "results") -> Any:
        """Rebuild a result from its JSON; a missing required key is named."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise BadValueError(f"{where} is not a {cls.__name__}: {err}") from None

    @classmethod
    def read(cls, path: str | Path) -> Any:
        """Read a result file written by `write`."""
        return cls.from_dict(json.loads(Path(path).read_text()), where=str(path))


@dataclass
class TeachResult(_Result):
    """`distill teach`: the saved teacher's size, cost and scores."""

    recipe: str
    teacher_path: str
    params: int
    macs: int
    clip_seconds: float
    best_val: float | None
    test: dict[str, float]
    epochs: int
    wall_seconds: float
    run_dir: str
    latency_ms_b1: float | None = None


@dataclass
class QATResult(_Result):
    """`distill qat`: the fake-quant fine-tuning of a checkpoint and the epoch kept; `module`
    is the fake-quant student itself (in memory only; `module.convert()` gives int8)."""

    NOT_WRITTEN = ("module",)

    checkpoint: str
    monitor: str
    best_val: float | None
    best_epoch: int | None
    val_scores: list[float]
    epochs: int
    weight_bits: int
    fake_quant: str
    freeze_bn: bool
    fake_quant_modules: int
    quantized_layers: list[str]
    qat_student: str
    wall_seconds: float
    module: Any = field(default=None, repr=False, compare=False)


@dataclass
class FitResult(_Result):
    """`distill fit`: the student, its best validation score and its test scores (rank 0);
    other DDP ranks fill only `rank` and `test`."""

    OMIT_IF_NONE = ("qat", "rank", "skipped_files", "test_report")

    recipe: str | None = None
    student: str | None = None
    params: int | None = None
    macs: int | None = None
    task: str | None = None
    monitor: str | None = None
    best_val: float | None = None
    test: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    epochs: int | None = None
    seed: int | None = None
    wall_seconds: float | None = None
    run_dir: str | None = None
    qat: dict[str, Any] | None = None  # QATResult.to_dict() when the recipe enabled QAT
    rank: int | None = None  # set on DDP ranks other than 0 only
    skipped_files: list | None = None  # {path, reason} left out (data.skip_bad_files only)
    test_report: dict[str, Any] | None = None  # per-class scores (confusion matrix), metrics.md


__all__ = ["FitResult", "QATResult", "TeachResult"]
