"""`export_run`: float and int8 ONNX of a run's student, checked in onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from distill.deploy.int8 import quantize_onnx, resolved_op_types
from distill.deploy.int8_error import activation_sqnr, format_sqnr
from distill.deploy.onnx_io import export_float, run_onnx, run_torch, split_features
from distill.deploy.paired import format_paired, paired_change
from distill.deploy.range_equalize import equalize_activation_ranges
from distill.errors import BadValueError, DistillError
from distill.files import write_json
from distill.pipeline.artifacts import EXPORT_DIR, frames_of, load_module, load_qat_student, resolve

MIN_FLOAT_AGREEMENT = 0.995


class ParityError(DistillError, RuntimeError):
    """The exported model disagrees with PyTorch more than allowed."""


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose argmax is the same."""
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (single-label) of logits against integer labels."""
    if labels.ndim != 1:
        raise BadValueError(
            "int8 accuracy is reported for single-label tasks; got multi-label labels"
        )
    return float((logits.argmax(axis=1) == labels).mean())


def check_float(
    path: Path,
    torch_logits: np.ndarray,
    onnx_logits: np.ndarray,
    minimum: float,
    runtime: str = "onnxruntime",
):
    """Raise ParityError when argmax agreement is below `minimum`; returns the agreement."""
    agree = agreement(torch_logits, onnx_logits)
    if agree < minimum:
        raise ParityError(
            f"{path}: {runtime} argmax agrees with PyTorch on {agree:.2%} of the validation "
            f"clips, below the required {minimum:.2%} (max |logit diff| "
            f"{np.abs(torch_logits - onnx_logits).max():.3g}); the export is broken"
        )
    return agree


@dataclass
class ExportInputs:
    """What every export of a run starts from (ONNX and LiteRT alike)."""

    checkpoint: Path
    run_dir: Path
    module: Any  # the run's DistillModule, taps detached
    models: dict[str, nn.Module]  # "float", and "qat_float" after `distill qat`
    out: Path
    n_features: int
    frames: int
    feats: list[np.ndarray]  # feature batches of the checked split
    labels: np.ndarray
    calibration: list[np.ndarray]  # int8 calibration batches (empty without int8)


def export_inputs(
    target: str | Path,
    split: str,
    limit_batches: int | None,
    int8: bool,
    calib_batches: int,
    calib_split: str,
    data_overrides: list[str] | None,
    out_dir: str | Path | None,
) -> ExportInputs:
    """Load the run's student (and its QAT student, before any work: a refused artifact stops
    the export), the checked split's features and, with int8, the calibration batches."""
    checkpoint, run_dir = resolve(target)
    module = load_module(checkpoint)
    qat = load_qat_student(run_dir)
    if data_overrides:
        module.cfg = with_data_overrides(module.cfg, data_overrides)
    feats, labels = split_features(module, split, limit_batches)
    calibration: list[np.ndarray] = []
    if int8:
        calibration = (
            feats[:calib_batches]
            if calib_split == split
            else split_features(module, calib_split, calib_batches)[0]
        )
    models: dict[str, nn.Module] = {"float": module.student}
    if qat is not None:
        models["qat_float"] = qat[0]
    out = Path(out_dir) if out_dir else run_dir / EXPORT_DIR
    frontend = module.frontend
    return ExportInputs(
        checkpoint, run_dir, module, models, out, frontend.n_features, frames_of(module), feats,
        labels, calibration,
    )  # fmt: skip


def export_run(
    target: str | Path,
    int8: bool = False,
    split: str = "val",
    calib_batches: int = 8,
    limit_batches: int | None = None,
    min_agreement: float = MIN_FLOAT_AGREEMENT,
    out_dir: str | Path | None = None,
    calibration_method: str = "minmax",
    sqnr_batches: int = 0,
    int8_ops: list[str] | str | None = "auto",
    calib_split: str = "val",
    data_overrides: list[str] | None = None,
    opset: int | None = None,
    equalize: bool = True,
) -> dict[str, Any]:
    """Export the float student (and with int8=True the PTQ int8 student and, after
    `distill qat`, the QAT float and int8 students) and check them on `split`.

    int8 activation ranges come from the first `calib_batches` batches of `calib_split` by
    `calibration_method` (minmax | percentile | entropy); `int8_ops` limits quantization to
    those operator types (None: all; "auto": `quantize_onnx`'s rule); with `sqnr_batches` > 0
    each int8 file also gets the per-tensor SQNR against its float model on that many batches.
    `data_overrides` (`data.KEY=VALUE`) check on other data of the same classes, e.g. a
    larger bank (`data.root=...`). ONNX `opset`: default the recipe's `export.opset`.
    `equalize`: quantize a copy with per-channel activation ranges evened out
    (`distill.deploy.range_equalize`; the same function, written as
    `student_<int8 name>_graph.onnx` when it changes anything)."""
    if int8 and calib_batches < 1:
        raise BadValueError(f"calib_batches must be >= 1, given {calib_batches}")
    if calib_split not in ("train", "val"):
        raise BadValueError(f"calib_split must be train or val (never test), given {calib_split!r}")
    inputs = export_inputs(
        target, split, limit_batches, int8, calib_batches, calib_split, data_overrides, out_dir
    )
    module, feats, labels, out = inputs.module, inputs.feats, inputs.labels, inputs.out
    checkpoint, calibration = inputs.checkpoint, inputs.calibration
    n_features, frames = inputs.n_features, inputs.frames
    opset = int(module.cfg.export.opset) if opset is None else opset
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "split": split,
        "clips": len(labels),
        "data_root": str(module.cfg.data.root),
        "calibration_split": calib_split if int8 else None,
        "opset": opset,
    }
    files: dict[str, dict[str, Any]] = {}
    float_acc = None
    for name, student in inputs.models.items():
        path = export_float(student, out / f"student_{name}.onnx", n_features, frames, opset)
        known = labels if module.task == "single_label" else None
        entry = _float_onnx_entry(path, student, feats, known, min_agreement)
        if known is not None and name == "float":
            float_acc = entry["accuracy"]
        files[name] = entry
        if int8:
            options = {"calibration_method": calibration_method, "op_types": int8_ops}
            graph, equalized = path, []
            if equalize:
                p = 99.999 if calibration_method == "percentile" else 100.0  # ORT's percentile
                copy, equalized = equalize_activation_ranges(student, calibration, p)
                if equalized:
                    graph = out / f"student_{_int8_name(name)}_graph.onnx"
                    export_float(copy, graph, n_features, frames, opset)
            files[_int8_name(name)] = _int8(
                path, graph, feats, labels, entry, calibration, options, sqnr_batches
            )
            files[_int8_name(name)]["equalized"] = equalized
    report["files"] = files
    if float_acc is not None:
        for entry in files.values():
            if "accuracy" in entry:
                entry["accuracy_change_vs_float"] = entry["accuracy"] - float_acc
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "export.json", report)
    return report


def recipe_export_settings(target: str | Path) -> dict[str, Any]:
    """The `export` section (format, int8, opset) of the recipe a run was trained with, schema
    defaults filling keys an older recipe lacks: what `distill export` does without flags."""
    from omegaconf import OmegaConf

    from distill.config.schema import ExportConfig
    from distill.pipeline.artifacts import read_checkpoint

    checkpoint, _ = resolve(target)
    recipe = read_checkpoint(checkpoint).get("hyper_parameters", {}).get("cfg") or {}
    merged = OmegaConf.merge(OmegaConf.structured(ExportConfig), recipe.get("export") or {})
    return OmegaConf.to_container(merged)


def _float_onnx_entry(
    path: Path, student: nn.Module, feats: list[np.ndarray], labels: np.ndarray | None,
    min_agreement: float,
) -> dict[str, Any]:  # fmt: skip
    """Size, argmax agreement with PyTorch (ParityError below `min_agreement`) and, given the
    labels of a single-label task, accuracy of one float ONNX file."""
    torch_logits = run_torch(student, feats)
    onnx_logits = run_onnx(path, feats)
    entry = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "agreement_with_torch": check_float(path, torch_logits, onnx_logits, min_agreement),
        "max_abs_logit_diff": float(np.abs(torch_logits - onnx_logits).max()),
    }
    if labels is not None:
        entry["accuracy"] = accuracy(onnx_logits, labels)
    return entry


def with_data_overrides(cfg: Any, overrides: list[str]) -> Any:
    """The recipe with `data.KEY=VALUE` overrides applied; other keys are refused, since the
    student, frontend and classes are fixed by the checkpoint."""
    from distill.config import apply_overrides

    other = [o for o in overrides if not o.startswith("data.")]
    if other:
        raise BadValueError(
            f"export takes data.* overrides only (the model is the checkpoint's); given {other}"
        )
    return apply_overrides(cfg, overrides)


def _int8_name(float_name: str) -> str:
    return "int8_ptq" if float_name == "float" else "int8_qat"


def _int8(
    float_path: Path,
    graph: Path,
    feats,
    labels,
    float_entry: dict,
    calibration,
    options: dict,
    sqnr_batches: int,
) -> dict[str, Any]:
    name = _int8_name(float_path.stem.removeprefix("student_"))
    path = float_path.with_name(f"student_{name}.onnx")
    excluded = quantize_onnx(graph, path, calibration, **options)
    op_types = resolved_op_types(options["op_types"], excluded)
    float_logits = run_onnx(float_path, feats)
    logits = run_onnx(path, feats)
    entry: dict[str, Any] = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "from": str(graph),
        "kept_float": excluded,
        "calibration_method": options["calibration_method"],
        "quantized_op_types": op_types or "all",
        "calibration_clips": sum(len(b) for b in calibration),
        "agreement_with_float": agreement(float_logits, logits),
    }
    if "accuracy" in float_entry:
        entry["accuracy"] = accuracy(logits, labels)
        right, float_right = logits.argmax(1) == labels, float_logits.argmax(1) == labels
        entry["clips_fixed"] = int((right & ~float_right).sum())  # vs its own float model
        entry["clips_broken"] = int((float_right & ~right).sum())
    if sqnr_batches > 0:
        entry["activation_sqnr_db"] = activation_sqnr(graph, path, feats[:sqnr_batches])
    return entry


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary of `export_run`'s report."""
    lines = [
        f"export of {report['checkpoint']} checked on {report['clips']} {report['split']} clips"
    ]
    for name, e in report["files"].items():
        parts = [f"{name:10s} {e['bytes'] / 1024:8.1f} KB"]
        if "agreement_with_torch" in e:
            parts.append(f"argmax agreement with torch {e['agreement_with_torch']:.2%}")
        if "agreement_with_float" in e:
            fmt = "LiteRT" if report.get("runtime") == "LiteRT" else "ONNX"
            parts.append(f"agreement with float {fmt} {e['agreement_with_float']:.2%}")
        if "accuracy" in e:
            parts.append(f"acc {e['accuracy']:.4f}")
        if "accuracy_change_vs_float" in e and name != "float":
            parts.append(f"({100 * e['accuracy_change_vs_float']:+.2f} pts vs float)")
        if "clips_fixed" in e:
            paired = paired_change(e["clips_fixed"], e["clips_broken"], report["clips"])
            parts.append(
                f"[+{e['clips_fixed']} / -{e['clips_broken']} clips vs its float: "
                f"{format_paired(paired)}]"
            )
        lines.append("  " + "  ".join(parts) + f"  -> {e['path']}")
        if "activation_sqnr_db" in e:
            lines.append("    " + format_sqnr(e["activation_sqnr_db"]).replace("\n", "\n    "))
        if e.get("equalized"):
            lines.append(f"    quantized from a copy with per-channel ranges equalized at "
                         f"{len(e['equalized'])} ReLU outputs ({e['from']})")  # fmt: skip
    return "\n".join(lines)


__all__ = [
    "MIN_FLOAT_AGREEMENT",
    "ParityError",
    "agreement",
    "export_run",
    "format_report",
    "recipe_export_settings",
]
