"""`distill export --format tflite` for a run: the float and int8 `.tflite` files of its student
(and of its QAT student), each checked in the LiteRT interpreter on an evaluation split, with
its memory budget, written to `export_tflite.json`. The toolchain is `distill.deploy.litert`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from distill.deploy.litert import (
    _write_float,
    io_types,
    quantize_int8,
    require_litert,
    run_tflite,
)
from distill.deploy.litert_calibration import DEFAULT_PERCENTILE, check_calibration
from distill.errors import BadValueError
from distill.files import write_json

if TYPE_CHECKING:
    from distill.deploy.export import ExportInputs


def export_tflite_run(
    target: str | Path,
    int8: bool = False,
    split: str = "val",
    calib_batches: int = 8,
    limit_batches: int | None = None,
    min_agreement: float = 0.995,
    out_dir: str | Path | None = None,
    int8_io: bool = False,
    calib_split: str = "val",
    data_overrides: list[str] | None = None,
    rewrite: bool = True,
    sqnr_batches: int = 0,
    calibration_method: str = "percentile",
    percentile: float = DEFAULT_PERCENTILE,
    equalize: bool = True,
) -> dict[str, Any]:
    """Write `student_float.tflite` (and after `distill qat` `student_qat_float.tflite`), check
    each in the LiteRT interpreter on `split` against PyTorch (argmax agreement >= `min_agreement`
    or ParityError); with `int8` also the full-integer `student_int8_ptq.tflite` (and
    `student_int8_qat.tflite`), calibrated on the first `calib_batches` batches of `calib_split`
    (train or val, never test) by `calibration_method` / `percentile` (`quantize_int8`'s), with
    its accuracy change against float. Every file gets its memory budget (`deploy.memory`).
    `rewrite`: `convert_float`'s XNNPACK rewrites (off: the converter's own graph, lower peak
    memory for BC-ResNet). With `sqnr_batches` > 0 each int8 file also gets its per-tensor SQNR
    against its float file on that many batches of `split` (`distill.deploy.litert_error`).
    `equalize`: even out per-channel activation ranges of the int8 graph first
    (`distill.deploy.range_equalize`; same function). The report is also written to
    `export_tflite.json`."""
    from distill.deploy.export import export_inputs

    _check_options(int8, calib_batches, calib_split, limit_batches)
    check_calibration(calibration_method, percentile)
    if sqnr_batches < 0:
        raise BadValueError(f"sqnr_batches must be >= 0 (0: off), given {sqnr_batches}")
    require_litert()
    inputs = export_inputs(
        target, split, limit_batches, int8, calib_batches, calib_split, data_overrides, out_dir
    )
    module, feats, labels, out = inputs.module, inputs.feats, inputs.labels, inputs.out
    n_features, frames = inputs.n_features, inputs.frames
    single = module.task == "single_label"
    files: dict[str, dict[str, Any]] = {}
    known = labels if single else None
    for name, student in inputs.models.items():
        path, rewrites = _write_float(
            student, out / f"student_{name}.tflite", n_features, frames, rewrite, False
        )
        files[name], logits = _float_entry(path, student, feats, known, min_agreement)
        files[name]["rewrites"] = rewrites
        if int8:
            int8_name = "int8_ptq" if name == "float" else "int8_qat"
            files[int8_name] = _int8_file(
                student, out / f"student_{int8_name}.tflite", inputs, logits, rewrite, int8_io,
                sqnr_batches, (calibration_method, percentile), equalize,
            )  # fmt: skip
    if single:
        for entry in files.values():
            entry["accuracy_change_vs_float"] = entry["accuracy"] - files["float"]["accuracy"]
    report = {
        "runtime": "LiteRT",
        "checkpoint": str(inputs.checkpoint),
        "split": split,
        "clips": len(labels),
        "data_root": str(module.cfg.data.root),
        "calibration_split": calib_split if int8 else None,
        "calibration_method": calibration_method if int8 else None,
        "calibration_percentile": (
            percentile if int8 and calibration_method == "percentile" else None
        ),
        "int8_io": int8_io if int8 else None,
        "equalized_ranges": equalize if int8 else None,
        "files": files,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "export_tflite.json", report)
    return report


def _int8_file(
    student: nn.Module,
    int8_path: Path,
    inputs: ExportInputs,
    float_logits: np.ndarray,
    rewrite: bool,
    int8_io: bool,
    sqnr_batches: int,
    calibration: tuple[str, float] = ("minmax", DEFAULT_PERCENTILE),
    equalize: bool = True,
) -> dict[str, Any]:
    """Quantize the student's int8 graph (`convert_float(for_int8=True)`, a float file kept
    beside the int8 one as `<int8 name>_graph.tflite`; `calibration`: method and percentile;
    `equalize`: per-channel activation ranges evened out first, at the same percentile) and
    report it as `_int8_entry` does."""
    feats = inputs.feats
    single = inputs.module.task == "single_label"
    equalized: list[str] = []
    if equalize:
        from distill.deploy.range_equalize import equalize_activation_ranges

        p = calibration[1] if calibration[0] == "percentile" else 100.0
        student, equalized = equalize_activation_ranges(student, inputs.calibration, p)
    graph, rewrites = _write_float(
        student, int8_path.with_name(f"{int8_path.stem}_graph.tflite"), inputs.n_features,
        inputs.frames, rewrite, True,
    )  # fmt: skip
    quantize_int8(graph, int8_path, inputs.calibration, int8_io, *calibration)
    entry = _int8_entry(int8_path, graph, float_logits, feats, inputs.labels if single else None)
    entry["calibration_clips"] = sum(len(b) for b in inputs.calibration)
    entry["rewrites"] = rewrites
    entry["equalized"] = equalized  # the same key as the ONNX rows
    if sqnr_batches > 0:
        from distill.deploy.litert_error import tflite_activation_sqnr

        entry["activation_sqnr_db"] = tflite_activation_sqnr(graph, int8_path, feats[:sqnr_batches])
    return entry


def _check_options(
    int8: bool, calib_batches: int, calib_split: str, limit_batches: int | None
) -> None:
    if int8 and calib_batches < 1:
        raise BadValueError(f"calib_batches must be >= 1, given {calib_batches}")
    if calib_split not in ("train", "val"):
        raise BadValueError(f"calib_split must be train or val (never test), given {calib_split!r}")
    if limit_batches is not None and limit_batches < 1:
        raise BadValueError(f"limit_batches must be >= 1 (or unset), given {limit_batches}")


def _float_entry(
    path: Path,
    student: nn.Module,
    feats: list[np.ndarray],
    labels: np.ndarray | None,
    min_agreement: float,
) -> tuple[dict[str, Any], np.ndarray]:
    """The float file's report (ParityError below `min_agreement`) and its logits."""
    from distill.deploy.export import accuracy, check_float
    from distill.deploy.memory import memory_budget
    from distill.deploy.onnx_io import run_torch

    torch_logits, logits = run_torch(student, feats), run_tflite(path, feats)
    entry = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "agreement_with_torch": check_float(
            path, torch_logits, logits, min_agreement, runtime="LiteRT"
        ),
        "max_abs_logit_diff": float(np.abs(torch_logits - logits).max()),
        "memory": memory_budget(path),
    }
    if labels is not None:
        entry["accuracy"] = accuracy(logits, labels)
    return entry, logits


def _int8_entry(
    path: Path,
    float_path: Path,
    float_logits: np.ndarray,
    feats: list[np.ndarray],
    labels: np.ndarray | None,
) -> dict[str, Any]:
    """The int8 file's report: agreement with its float file, accuracy, clips it changes."""
    from distill.deploy.export import accuracy, agreement
    from distill.deploy.memory import memory_budget

    logits = run_tflite(path, feats)
    entry: dict[str, Any] = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "from": str(float_path),
        "io": io_types(path),
        "agreement_with_float": agreement(float_logits, logits),
        "memory": memory_budget(path),
    }
    if labels is not None:
        entry["accuracy"] = accuracy(logits, labels)
        right, float_right = logits.argmax(1) == labels, float_logits.argmax(1) == labels
        entry["clips_fixed"] = int((right & ~float_right).sum())
        entry["clips_broken"] = int((float_right & ~right).sum())
    return entry


def format_tflite_report(report: dict[str, Any]) -> str:
    """`export.format_report`'s summary plus each file's memory budget."""
    from distill.deploy.export import format_report
    from distill.deploy.memory import format_budget

    lines = [format_report(report)]
    if report.get("calibration_method"):
        how = report["calibration_method"]
        if report.get("calibration_percentile") is not None:
            how += f" ({report['calibration_percentile']}th percentile of each tensor's values)"
        lines.append(f"int8 activation ranges: {how}, {report['calibration_split']} clips")
        if report.get("equalized_ranges"):
            per_file = ", ".join(
                f"{len(entry['equalized'])} ReLU outputs ({name})"
                for name, entry in report["files"].items() if "equalized" in entry
            )  # fmt: skip
            lines.append(f"per-channel ranges equalized before int8: {per_file}")
    lines.append("memory budget (flash = file bytes; peak activations = largest set of tensors "
                 "alive at once in execution order):")  # fmt: skip
    for name, entry in report["files"].items():
        lines.append("  " + format_budget(name, entry["memory"]))
    return "\n".join(lines)


__all__ = ["export_tflite_run", "format_tflite_report"]
