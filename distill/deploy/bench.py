"""`bench_run`: size, compute and 1-thread onnxruntime latency of teacher, float and int8."""

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
    target: str | Path, runs: int = 100, warmup: int = 10, limit_batches: int | None = None
) -> list[dict[str, Any]]:
    """One row per model (teacher if any, float, int8 PTQ, int8 QAT when present)."""
    from distill.core.teacher_source import load_teacher_for
    from distill.students.profile import count_macs

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
    for row in rows:
        for batch in (1, 32):
            row[f"b{batch}_ms"] = onnx_latency(
                row["path"], row["shape"], batch, threads=1, warmup=warmup, runs=runs
            )
    _ratios(rows)
    return rows


def _row(name: str, path: Path, shape: tuple, params: int, macs: int) -> dict[str, Any]:
    return {
        "model": name,
        "path": str(path),
        "shape": shape,
        "params": params,
        "macs": macs,
        "bytes": path.stat().st_size,
        "runtime": "onnxruntime",
    }


def _ratios(rows: list[dict[str, Any]]) -> None:
    """teacher rows: teacher/float; int8 rows: their float/int8; float rows: 1."""
    by_name = {r["model"]: r for r in rows}
    for row in rows:
        name = row["model"]
        if name == "teacher":
            ref, invert = by_name["student float"], False
        elif "int8" in name:
            ref = by_name["student qat_float" if "qat" in name else "student float"]
            invert = True
        else:
            ref, invert = row, True
        for b in ("b1", "b32"):
            a, f = row[f"{b}_ms"], ref[f"{b}_ms"]
            row[f"ratio_{b}"] = f / a if invert else a / f


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
            f"{r['bytes'] / 1024:>9.1f} {r['b1_ms']:>9.3f} {r['b32_ms']:>9.3f} "
            f"{r['ratio_b1']:>8.2f}x {r['ratio_b32']:>8.2f}x"
        )
    lines.append(
        "ratio: teacher = teacher/float latency; int8 = float/int8 speed-up (vs its own float "
        "model); 1 intra-op thread, median, warm-up excluded; inputs are features (no frontend)"
    )
    return "\n".join(lines)


__all__ = ["bench_run", "format_table"]
