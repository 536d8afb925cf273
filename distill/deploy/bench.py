"""`bench_run`: size, compute and 1-thread latency of teacher, float and int8: onnxruntime, and
LiteRT when its extra is installed, measured in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distill.cost import onnx_latency
from distill.deploy.export import export_run
from distill.pipeline.artifacts import EXPORT_DIR, frames_of, load_module, resolve
from distill.teachers.export import export_teacher


def _params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def bench_run(
    target: str | Path,
    runs: int = 100,
    warmup: int = 10,
    limit_batches: int | None = None,
    litert: bool | None = None,
) -> list[dict[str, Any]]:
    """One row per model (teacher if any, float, int8 PTQ, int8 QAT when present) and runtime;
    `litert` None: LiteRT rows when the `litert` extra is installed, True: required."""
    from distill.core.teacher_source import load_teacher_for
    from distill.deploy import litert as lite
    from distill.students.profile import count_macs

    if litert is None:
        litert = not lite.missing_modules()
    elif litert:
        lite.require_litert()

    checkpoint, run_dir = resolve(target)
    module = load_module(checkpoint)
    out = run_dir / EXPORT_DIR
    report = export_run(checkpoint, int8=True, limit_batches=limit_batches, out_dir=out)
    shape = (1, module.frontend.n_features, frames_of(module))
    macs = count_macs(module.student, shape)
    params = _params(module.student)
    rows: list[dict[str, Any]] = []
    teacher = load_teacher_for(module.cfg)
    if teacher is not None:
        samples = int(round(module.cfg.data.clip_seconds * module.cfg.data.sample_rate))
        path, t_shape, wrapper = export_teacher(
            teacher, out / "teacher.onnx", samples, int(module.cfg.export.opset)
        )
        t_macs = count_macs(wrapper, (1, *t_shape[1:]))  # per clip, like the students'
        rows.append(_row("teacher", path, t_shape, _params(teacher), t_macs))
    for name, entry in report["files"].items():
        rows.append(_row(f"student {name}", Path(entry["path"]), shape, params, macs))
    if litert:
        from distill.deploy.litert_export import export_tflite_run

        tfl = export_tflite_run(checkpoint, int8=True, limit_batches=limit_batches, out_dir=out)
        for name, entry in tfl["files"].items():
            row = _row(f"student {name}", Path(entry["path"]), shape, params, macs, "litert")
            rows.append({**row, "memory": entry["memory"]})
    for row in rows:
        for batch in (1, 32):
            if row["runtime"] == "litert":  # None at 32: the .tflite's batch is fixed at 1
                row[f"b{batch}_ms"] = lite.tflite_latency(row["path"], batch, 1, warmup, runs)
            else:
                row[f"b{batch}_ms"] = onnx_latency(
                    row["path"], row["shape"], batch, threads=1, warmup=warmup, runs=runs
                )
    _ratios(rows)
    return rows


def _row(
    name: str, path: Path, shape: tuple, params: int, macs: int, runtime: str = "onnxruntime"
) -> dict[str, Any]:
    return {
        "model": name,
        "path": str(path),
        "shape": shape,
        "params": params,
        "macs": macs,
        "bytes": path.stat().st_size,
        "runtime": runtime,
    }


def _ratios(rows: list[dict[str, Any]]) -> None:
    """teacher rows: teacher/float (onnxruntime); int8 rows: their float/int8 in the same
    runtime; float rows: 1; None where a latency is missing."""
    by_name = {(r["runtime"], r["model"]): r for r in rows}
    for row in rows:
        name, runtime = row["model"], row["runtime"]
        if name == "teacher":
            ref, invert = by_name[("onnxruntime", "student float")], False
        elif "int8" in name:
            ref = by_name[(runtime, "student qat_float" if "qat" in name else "student float")]
            invert = True
        else:
            ref, invert = row, True
        for b in ("b1", "b32"):
            a, f = row[f"{b}_ms"], ref[f"{b}_ms"]
            row[f"ratio_{b}"] = None if a is None or f is None else (f / a if invert else a / f)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table with ratio columns and a legend."""
    head = (
        "model",
        "runtime",
        "params",
        "MACs",
        "size KB",
        "b1 ms",
        "b32 ms",
        "ratio b1",
        "ratio b32",
    )
    lines = ["{:<20s} {:<11s} {:>9s} {:>12s} {:>9s} {:>9s} {:>9s} {:>9s} {:>9s}".format(*head)]
    for r in rows:
        lines.append(
            f"{r['model']:<20s} {r['runtime']:<11s} {r['params']:>9d} {r['macs']:>12d} "
            f"{r['bytes'] / 1024:>9.1f} {_num(r['b1_ms'], '.3f')} {_num(r['b32_ms'], '.3f')} "
            f"{_num(r['ratio_b1'], '.2f', 'x')} {_num(r['ratio_b32'], '.2f', 'x')}"
        )
    lines.append(
        "ratio: teacher = teacher/float latency; int8 = float/int8 speed-up (vs its own float "
        "model, same runtime); 1 thread, median, warm-up excluded; inputs are features (no "
        "frontend); litert b32 n/a: the .tflite has a fixed batch of 1"
    )
    budgets = [r for r in rows if "memory" in r]
    if budgets:
        from distill.deploy.memory import format_budget

        lines.append("memory budget of the .tflite files (flash = file bytes; peak activations "
                     "= largest set of tensors alive at once in execution order):")  # fmt: skip
        lines += ["  " + format_budget(r["model"], r["memory"]) for r in budgets]
    return "\n".join(lines)


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    """A table cell of width 9: the number, or n/a."""
    return f"{value:>{9 - len(unit)}{fmt}}{unit}" if value is not None else f"{'n/a':>9s}"


__all__ = ["bench_run", "format_table"]
