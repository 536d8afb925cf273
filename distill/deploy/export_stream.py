"""`distill export RUN --variant waveform|stateful`: deployment ONNX of a run, checked.

- waveform: the features-in export of `export_run` (float; with int8 also PTQ and, after
  `distill qat`, QAT), each composed behind the ONNX frontend as `student_waveform_<name>.onnx`;
  the float one is checked against PyTorch (frontend + student) on the split's clips (max
  |logit difference| <= `WAVEFORM_TOLERANCE`), the others against the float waveform model.
- stateful: `student_stateful.onnx` (float; the int8 path does not cover the step graph),
  checked against PyTorch's stateful stream over the split's clips played one after another
  (max |posterior difference| <= `STATEFUL_TOLERANCE`); with `format="tflite"` the same step
  as `student_stateful.tflite` (LiteRT, `distill.deploy.litert_stream`), checked the same way.
The report goes to `<out>/export_stream.json` (one entry per variant; `stateful_tflite` for
the LiteRT file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.deploy.onnx_stream import (
    STATEFUL_TOLERANCE,
    WAVEFORM_TOLERANCE,
    check_parity,
    export_stateful,
    export_waveform,
    stateful_parity,
    step_seconds_for,
    waveform_parity,
)
from distill.errors import BadValueError
from distill.files import write_json
from distill.pipeline.artifacts import EXPORT_DIR, resolve

REPORT = "export_stream.json"
PARITY_SECONDS = 20.0  # audio of the stateful parity check
CALIBRATION_SECONDS = 60.0  # validation audio streamed to calibrate the int8 stateful step


def split_waveforms(module: Any, split: str, limit_batches: int | None) -> tuple[list, np.ndarray]:
    """(waveform batches (B, N), labels) of a split of the run's data."""
    from distill.data import build_datamodule

    waves, labels = [], []
    for i, batch in enumerate(build_datamodule(module.cfg.data).dataloader(split, shuffle=False)):
        if limit_batches is not None and i >= limit_batches:
            break
        waves.append(batch["waveform"].float().numpy())
        labels.append(batch["label"].numpy())
    if not waves:
        raise BadValueError(f"split {split!r} of {module.cfg.data.root} yielded no batches")
    return waves, np.concatenate(labels)


def stream_thresholds(run_dir: Path) -> dict[str, Any] | None:
    """The pooled operating points of the run's streaming evaluation, when it has one."""
    path = run_dir / "stream_eval" / "stream_eval.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return {
        "source": str(path),
        "rule": "one threshold for every keyword (pooled), lowest meeting the target FA/h",
        "at_fa_per_hour": {
            target: at["pooled"]["threshold"] for target, at in result["at_fa_per_hour"].items()
        },
        "negative_hours": result["negative_hours"],
    }


def _load(target: str | Path) -> tuple[Any, Any, Path]:
    from distill.deploy.detector_model import load_detector_model
    from distill.pipeline.artifacts import load_module

    checkpoint, run_dir = resolve(target)
    return load_module(checkpoint), load_detector_model(checkpoint), run_dir


def export_waveform_run(
    target: str | Path,
    features_report: dict[str, Any],
    split: str = "val",
    limit_batches: int | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Compose every features-in file of `features_report` (from `export_run`) behind the ONNX
    frontend and check them; returns the waveform part of the report."""
    module, det, run_dir = _load(target)
    out = Path(out_dir) if out_dir else run_dir / EXPORT_DIR
    waves, labels = split_waveforms(module, split, limit_batches)
    extra = {"thresholds_stream_eval": stream_thresholds(run_dir)}
    files: dict[str, Any] = {}
    float_logits = None
    for name, entry in features_report["files"].items():
        path = export_waveform(det, out / f"student_waveform_{name}.onnx", entry["path"],
                               extra_meta=extra)  # fmt: skip
        logits = _run_waveform(path, waves)
        row: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size,
                               "from": entry["path"]}  # fmt: skip
        if name == "float":
            row.update(waveform_parity(det, path, waves))
            check_parity(path, row["max_abs_logit_diff"], WAVEFORM_TOLERANCE, "the logit")
            float_logits = logits
        elif float_logits is not None:
            row["agreement_with_float"] = float((logits.argmax(1) == float_logits.argmax(1)).mean())
        if labels.ndim == 1:
            row["accuracy"] = float((logits.argmax(1) == labels).mean())
        files[name] = row
    report = {"split": split, "clips": len(labels), "tolerance_logit": WAVEFORM_TOLERANCE,
              "files": files}  # fmt: skip
    _write(out, "waveform", report)
    return report


def _run_waveform(path: Path, waves: list[np.ndarray]) -> np.ndarray:
    from distill.cost import session

    sess = session(path, threads=1)
    return np.concatenate([sess.run(["logits"], {"waveform": w})[0] for w in waves])


def export_stateful_run(
    target: str | Path,
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
    split: str = "val",
    out_dir: str | Path | None = None,
    opset: int | None = None,
    format: str = "onnx",
    int8: bool = False,
) -> dict[str, Any]:
    """Export and check the run's stateful streaming model as `format` onnx (`opset`: default
    the recipe's `export.opset`) or tflite (LiteRT; `opset` unused), with `int8` (tflite only)
    also the step with an int8 student calibrated on the validation split; returns its
    report."""
    if format not in ("onnx", "tflite"):
        raise BadValueError(f"stateful export format must be onnx or tflite, given {format!r}")
    if int8 and format != "tflite":
        raise BadValueError("the int8 stateful step is written as LiteRT only: use --format tflite")
    module, det, run_dir = _load(target)
    out = Path(out_dir) if out_dir else run_dir / EXPORT_DIR
    step = hop_seconds if hop_seconds is not None else step_seconds_for(det)
    extra = {"thresholds_stream_eval": stream_thresholds(run_dir)}
    wave = _parity_stream(module, split, int(PARITY_SECONDS * det.sample_rate))
    if format == "tflite":
        from distill.deploy import litert_stream

        converted = litert_stream.convert_step(det, step, window_seconds)  # float and int8
        path = litert_stream.write_step(
            det, converted, converted.content, out / "student_stateful.tflite", extra
        )
        parity = litert_stream.stateful_tflite_parity(det, path, wave)
    else:
        opset = int(module.cfg.export.opset) if opset is None else opset
        path = export_stateful(
            det, out / "student_stateful.onnx", step, window_seconds, opset, extra_meta=extra
        )
        parity = stateful_parity(det, path, wave)
    check_parity(path, parity["max_abs_posterior_diff"], STATEFUL_TOLERANCE, "the posterior")
    report = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "hop_seconds": step,
        "window_seconds": window_seconds or det.window_seconds,
        "split": split,
        "parity_seconds": len(wave) / det.sample_rate,
        "tolerance_posterior": STATEFUL_TOLERANCE,
        **parity,
        "int8": _stateful_int8(module, det, converted, out, extra, wave)
        if int8
        else "not exported: pass --int8 with --format tflite",
    }
    _write(out, "stateful" if format == "onnx" else "stateful_tflite", report)
    return report


def _stateful_int8(
    module: Any, det: Any, converted: Any, out: Path, extra: dict, wave: Any
) -> dict[str, Any]:
    """Write the int8-student stateful `.tflite` of the `converted` step, calibrated on the
    validation split's clips played in order, and compare its stream with PyTorch's float
    stream over `wave`."""
    from distill.deploy.litert_stream import stateful_tflite_parity
    from distill.deploy.litert_stream_int8 import write_stateful_int8

    calibration = _parity_stream(module, "val", int(CALIBRATION_SECONDS * det.sample_rate))
    path = write_stateful_int8(
        det, converted, out / "student_stateful_int8.tflite", calibration, extra,
        calibration_source="the val split's clips played in order",
    )  # fmt: skip
    parity = stateful_tflite_parity(det, path, wave)
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "calibration_split": "val",
        "calibration_seconds": len(calibration) / det.sample_rate,
        "max_abs_posterior_diff_vs_float": parity["max_abs_posterior_diff"],
        "argmax_agreement_with_float": parity["argmax_agreement"],
        "hops": parity["hops"],
    }


def _parity_stream(module: Any, split: str, samples: int) -> np.ndarray:
    """The split's clips played one after another, up to `samples` samples."""
    from distill.data import build_datamodule

    parts, total = [], 0
    for batch in build_datamodule(module.cfg.data).dataloader(split, shuffle=False):
        wave = batch["waveform"].float().reshape(-1)
        parts.append(wave)
        total += wave.numel()
        if total >= samples:
            break
    return torch.cat(parts)[:samples].numpy()


def _write(out: Path, variant: str, report: dict[str, Any]) -> None:
    path = out / REPORT
    old = json.loads(path.read_text()) if path.is_file() else {}
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, {**old, variant: report})


def format_stream_report(variant: str, report: dict[str, Any]) -> str:
    """Human-readable lines for `export_waveform_run` / `export_stateful_run` reports."""
    if variant == "stateful":
        line = (
            f"stateful {report['bytes'] / 1024:8.1f} KB  step {report['hop_seconds']:g} s, "
            f"window {report['window_seconds']:g} s, max |posterior diff| vs PyTorch stream "
            f"{report['max_abs_posterior_diff']:.2g} over {report['parity_seconds']:g} s  -> "
            f"{report['path']}"
        )
        q = report.get("int8")
        if isinstance(q, dict):
            line += (
                f"\nint8     {q['bytes'] / 1024:8.1f} KB  student int8, frontend and pooled window "
                "float; against "
                f"the float stream: max |posterior diff| {q['max_abs_posterior_diff_vs_float']:.2g}"
                f", argmax agreement {q['argmax_agreement_with_float']:.2%} of {q['hops']} hops "
                f"(calibrated on {q['calibration_seconds']:g} s of val)  -> {q['path']}"
            )
        return line
    lines = [f"waveform-in models checked on {report['clips']} {report['split']} clips"]
    for name, e in report["files"].items():
        parts = [f"{name:10s} {e['bytes'] / 1024:8.1f} KB"]
        if "max_abs_logit_diff" in e:
            parts.append(f"max |logit diff| vs PyTorch {e['max_abs_logit_diff']:.2g}")
        if "agreement_with_float" in e:
            parts.append(f"agreement with float {e['agreement_with_float']:.2%}")
        if "accuracy" in e:
            parts.append(f"acc {e['accuracy']:.4f}")
        lines.append("  " + "  ".join(parts) + f"  -> {e['path']}")
    return "\n".join(lines)


__all__ = ["export_stateful_run", "export_waveform_run", "format_stream_report"]
