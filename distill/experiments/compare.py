"""`distill compare`: a grid of students x loss arms x seeds, resumable, summarised in one CSV."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from distill.config import apply_overrides
from distill.core.losses.arms import Arm
from distill.core.losses.registry import loss_needs, terms_needing
from distill.core.spans import missing_spans, span_settings
from distill.errors import BadValueError, MissingFileError
from distill.pipeline.artifacts import STUDENT_FILE
from distill.pipeline.results import FitResult
from distill.report.results import result_row, write_rows


def parse_list(text: str, what: str) -> list[str]:
    """Comma-separated values, refusing an empty list."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BadValueError(f"--{what} needs at least one value (comma-separated)")
    return items


def run_grid(
    cfg: DictConfig,
    student_names: list[str],
    arms: list[str],
    seeds: int,
    out_dir: str | Path,
    collect_only: bool = False,
    jobs: int = 1,
    stream_eval_hours: float | None = None,
) -> Path:
    """Run (or skip, when finished) every student x arm x seed; write results.csv; return it.

    With `jobs` > 1 that many runs train side by side in their own processes. With
    `collect_only`, nothing is trained: the finished runs are tabulated and the missing ones
    listed (for grids split over several processes, each of which writes its own arms).
    With `stream_eval_hours`, every finished run also gets the streaming metric over that many
    hours of negative audio (`stream_columns`; reused when unchanged) in extra columns."""
    from distill.caches.build import build_caches
    from distill.experiments.grid import train_runs

    if seeds < 1:
        raise BadValueError(f"--seeds must be at least 1, given {seeds}")
    if jobs < 1:
        raise BadValueError(f"--jobs must be at least 1, given {jobs}")
    out_dir = Path(out_dir)
    arm_objs = [Arm(a) for a in arms]
    for arm in arm_objs:
        arm.overrides(cfg)  # validate every arm before any work starts
    if not collect_only:
        check_spans(cfg, arm_objs)
    cells = [
        (student, arm, seed, out_dir / student / arm.name / f"seed{seed}")
        for student in student_names
        for arm in arm_objs
        for seed in range(seeds)
    ]
    pending, missing = _plan(cfg, cells, collect_only)
    if pending:
        # side by side, the feature cache is built once before the runs that read it start
        teacher_cache, _ = build_caches(
            cfg, teacher=_needs_teacher_cache(cfg, arm_objs), features=jobs > 1
        )
        check_frame_logits(cfg, arm_objs, teacher_cache)
        train_runs(pending, jobs)
    rows = [
        result_row(student, arm, seed, FitResult.read(run_dir / "results.json"))
        for student, arm, seed, run_dir in cells
        if run_dir not in missing
    ]
    if missing:
        print(f"compare: {len(missing)} run(s) not finished, left out of the table:")
        for run_dir in missing:
            print(f"  {run_dir}")
    if collect_only and not rows:
        raise MissingFileError(
            f"compare --collect-only: no finished run (results.json) under {out_dir} for "
            f"students {', '.join(student_names)} and arms {', '.join(arms)}"
        )
    _add_cost_columns(rows, stream_eval_hours)
    csv_path = out_dir / "results.csv"
    write_rows(csv_path, rows)
    return csv_path


def check_spans(cfg: DictConfig, arms: list[Arm]) -> None:
    """Refuse, before any work, arms whose losses need ground-truth spans (`span`,
    `span_timed`) on data that has none, naming the arm and the missing manifest."""
    needing = {}
    for arm in arms:
        terms = terms_needing(apply_overrides(cfg, arm.overrides(cfg)).losses, "spans")
        if terms:
            needing[arm.name] = terms
    if not needing:
        return
    from distill.data import build_datamodule

    reason = missing_spans(build_datamodule(cfg.data).dataset("train"), cfg.data.root)
    if reason is not None:
        arm, terms = next(iter(needing.items()))
        also = f" (also {', '.join(list(needing)[1:])})" if len(needing) > 1 else ""
        raise BadValueError(
            f"compare: arm {arm!r}{also} needs ground-truth spans ({span_settings(terms)}), but "
            f"{reason}; drop it or use data with a manifest"
        )


def check_frame_logits(cfg: DictConfig, arms: list[Arm], cache: Any) -> None:
    """Refuse, before training, arms that distil the teacher's per-token logits (`frame_logit`)
    when the teacher cache holds none (built before they existed, or a teacher without them)."""
    needing = [
        arm.name
        for arm in arms
        if (losses := apply_overrides(cfg, arm.overrides(cfg)).losses).timed.weight > 0
        and losses.timed.target == "frame_logit"
    ]
    if not needing or cache is None:
        return
    records, _ = cache.open("train")
    if "frame_logits" not in (records.dtype.names or ()):
        raise BadValueError(
            f"compare: arm {needing[0]!r} needs the teacher's per-token class logits, which the "
            f"teacher cache in {cache.directory} does not hold (built before they existed, or a "
            "teacher that gives none: see docs/timed.md); rebuild it with `distill cache "
            "RECIPE --rebuild`"
        )


def _plan(cfg: DictConfig, cells: list[tuple], collect_only: bool) -> tuple[list, list[Path]]:
    """(runs to train, unfinished run folders left out): finished cells are skipped, an
    unfinished folder is cleared and redone (or, with `collect_only`, listed as missing)."""
    from distill.experiments.grid import GridRun

    pending, missing = [], []
    for student, arm, seed, run_dir in cells:
        if (run_dir / "results.json").is_file():
            print(f"compare: {student} {arm.name} seed {seed}: done, skipped")
        elif collect_only:
            missing.append(run_dir)
        else:
            if run_dir.exists():
                print(f"compare: {run_dir} holds an unfinished run: redoing it")
                shutil.rmtree(run_dir)
            run_cfg = apply_overrides(
                cfg,
                [
                    f"student.name={student}",
                    f"trainer.seed={seed}",
                    f"name={cfg.name}-{student}-{arm.name}-s{seed}",
                    *arm.overrides(cfg),
                ],
            )
            pending.append(GridRun(f"{student} {arm.name} seed {seed}", run_cfg, run_dir))
    return pending, missing


def _add_cost_columns(rows: list[dict], stream_eval_hours: float | None) -> None:
    """Latency per student and, with `stream_eval_hours`, the streaming metric per run."""
    latency = {
        s: student_latency(Path(r["run_dir"]) / STUDENT_FILE)
        for s, r in {row["student"]: row for row in rows}.items()
    }
    for row in rows:
        row["latency_ms_b1"] = latency[row["student"]]
        if stream_eval_hours is not None:
            row.update(stream_columns(Path(row["run_dir"]), stream_eval_hours))


def stream_columns(run_dir: Path, hours: float) -> dict[str, float | None]:
    """The streaming metric of a finished run (written to <run>/stream_eval/) as CSV columns."""
    from distill.deploy.stream_run import (
        EvalStreamOptions,
        eval_stream_model,
        frr_columns,
        model_recipe,
    )

    print(f"compare: streaming metric of {run_dir} over {hours:g} h of negatives", flush=True)
    options = EvalStreamOptions(hours=hours)
    result = eval_stream_model(run_dir, model_recipe(run_dir), options=options, progress=False)
    return frr_columns(result)


def student_latency(student_file: Path, runs: int = 100) -> float:
    """Median batch-1 latency (ms, onnxruntime, 1 thread) of a saved float student."""
    import tempfile

    from distill.cost import onnx_latency
    from distill.data.frontend import Frontend
    from distill.deploy.onnx_io import export_float
    from distill.pipeline.artifacts import load_student

    model, info = load_student(student_file)
    frontend = Frontend(**info["frontend"])
    frames = frontend.num_frames(int(round(info["clip_seconds"] * frontend.sample_rate)))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_float(model, Path(tmp) / "student.onnx", info["n_features"], frames, 17)
        return onnx_latency(path, (1, info["n_features"], frames), batch=1, runs=runs)


def _needs_teacher_cache(cfg: DictConfig, arms: list[Arm]) -> bool:
    """Whether any arm's losses read teacher outputs that the teacher cache must hold."""
    if cfg.teacher.kind == "none" or not bool(cfg.teacher.cache):
        return False
    return any(
        "teacher" in loss_needs(apply_overrides(cfg, arm.overrides(cfg)).losses) for arm in arms
    )
