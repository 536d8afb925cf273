"""`distill compare`: a grid of students x loss arms x seeds, resumable, summarised in one CSV."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from distill.config import apply_overrides

# Weights used for an arm when the recipe leaves that loss at 0.
DEFAULT_WEIGHTS = {"logit_kd": 0.5, "temporal_kd": 0.25, "hint": 0.1, "attention_transfer": 0.5}
# Arm token -> (loss term, temporal target or None). Controls supervise the same head with
# something other than the teacher, to tell the teacher's knowledge from mere localisation.
ARM_TOKENS: dict[str, tuple[str | None, str | None]] = {
    "none": (None, None),
    "logit": ("logit_kd", None),
    "temporal": ("temporal_kd", "teacher"),
    "hint": ("hint", None),
    "at": ("attention_transfer", None),
    "span": ("temporal_kd", "span"),
    "shuffled": ("temporal_kd", "shuffled"),
    "uniform": ("temporal_kd", "uniform"),
}
CONTROL_TOKENS = ("span", "shuffled", "uniform")
RESULT_COLUMNS = [
    "student", "arm", "group", "seed", "metric", "test_score", "best_val", "params", "macs",
    "student_attention_in_span", "student_attention_entropy", "target_attention_in_span",
    "target_attention_entropy", "latency_ms_b1", "epochs", "wall_seconds", "run_dir",
]  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One loss configuration of the grid, e.g. `logit+temporal` or the control `span`.

    A token may carry its own weight, `temporal@0.1`, so that one grid sweeps a loss weight
    (the paper's lambda); without one the recipe's weight (or DEFAULT_WEIGHTS) is used."""

    name: str

    @property
    def weighted_tokens(self) -> list[tuple[str, float | None]]:
        """(token, weight or None) per '+'-joined part, checked against ARM_TOKENS."""
        parts = []
        for part in self.name.split("+"):
            token, sep, weight_text = part.partition("@")
            if token not in ARM_TOKENS:
                raise ValueError(
                    f"unknown loss arm {token!r} in {self.name!r}; valid: "
                    f"{', '.join(ARM_TOKENS)} (join with '+', e.g. logit+temporal; a weight "
                    "follows '@', e.g. temporal@0.1)"
                )
            weight = None
            if sep:
                if ARM_TOKENS[token][0] is None:
                    raise ValueError(f"loss arm {self.name!r}: {token!r} takes no weight")
                try:
                    weight = float(weight_text)
                except ValueError:
                    weight = float("nan")
                if not (math.isfinite(weight) and weight > 0):
                    raise ValueError(
                        f"loss arm {self.name!r}: the weight after '@' must be a finite "
                        f"number > 0, given {weight_text!r}"
                    )
            parts.append((token, weight))
        return parts

    @property
    def tokens(self) -> list[str]:
        """The loss tokens without their weights (not checked: `overrides` checks them)."""
        return [part.partition("@")[0] for part in self.name.split("+")]

    @property
    def is_control(self) -> bool:
        return any(t in CONTROL_TOKENS for t in self.tokens)

    def overrides(self, cfg: DictConfig) -> list[str]:
        """Dotted overrides that switch the recipe's losses to this arm."""
        weights = {term: 0.0 for term in DEFAULT_WEIGHTS}
        target = None
        for token, weight in self.weighted_tokens:
            term, tgt = ARM_TOKENS[token]
            if term is None:
                continue
            if weight is None:
                recipe_weight = float(cfg.losses[term].weight)
                weight = recipe_weight if recipe_weight > 0 else DEFAULT_WEIGHTS[term]
            if weights[term] > 0 and weights[term] != weight:
                raise ValueError(
                    f"loss arm {self.name!r} gives losses.{term} two weights "
                    f"({weights[term]} and {weight})"
                )
            weights[term] = weight
            if tgt is not None:
                if target not in (None, tgt):
                    raise ValueError(
                        f"loss arm {self.name!r} asks for two temporal targets ({target}, {tgt})"
                    )
                target = tgt
        out = [f"losses.{term}.weight={w}" for term, w in weights.items()]
        out.append(f"losses.temporal_kd.target={target or 'teacher'}")
        return out


def parse_list(text: str, what: str) -> list[str]:
    """Comma-separated values, refusing an empty list."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what} needs at least one value (comma-separated)")
    return items


def run_grid(
    cfg: DictConfig,
    student_names: list[str],
    arms: list[str],
    seeds: int,
    out_dir: str | Path,
    collect_only: bool = False,
    jobs: int = 1,
) -> Path:
    """Run (or skip, when finished) every student x arm x seed; write results.csv; return it.

    With `jobs` > 1 that many runs train side by side in their own processes. With
    `collect_only`, nothing is trained: the finished runs are tabulated and the missing ones
    listed (for grids split over several processes, each of which writes its own arms)."""
    from distill.grid_runs import GridRun, train_runs
    from distill.teacher_setup import build_caches

    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, given {seeds}")
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, given {jobs}")
    out_dir = Path(out_dir)
    arm_objs = [Arm(a) for a in arms]
    for arm in arm_objs:
        arm.overrides(cfg)  # validate every arm before any work starts
    cells = [
        (student, arm, seed, out_dir / student / arm.name / f"seed{seed}")
        for student in student_names
        for arm in arm_objs
        for seed in range(seeds)
    ]
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
    if pending:
        # side by side, the feature cache is built once before the runs that read it start
        build_caches(cfg, teacher=_needs_teacher_cache(cfg, arm_objs), features=jobs > 1)
        train_runs(pending, jobs)
    rows = [
        result_row(student, arm, seed, json.loads((run_dir / "results.json").read_text()))
        for student, arm, seed, run_dir in cells
        if run_dir not in missing
    ]
    if missing:
        print(f"compare: {len(missing)} run(s) not finished, left out of the table:")
        for run_dir in missing:
            print(f"  {run_dir}")
    if collect_only and not rows:
        raise FileNotFoundError(
            f"compare --collect-only: no finished run (results.json) under {out_dir} for "
            f"students {', '.join(student_names)} and arms {', '.join(arms)}"
        )
    latency = {
        s: student_latency(Path(r["run_dir"]) / "student.pt")
        for s, r in {row["student"]: row for row in rows}.items()
    }
    for row in rows:
        row["latency_ms_b1"] = latency[row["student"]]
    csv_path = out_dir / "results.csv"
    write_rows(csv_path, rows)
    return csv_path


def student_latency(student_file: Path, runs: int = 100) -> float:
    """Median batch-1 latency (ms, onnxruntime, 1 thread) of a saved float student."""
    import tempfile

    from distill.data.frontend import Frontend
    from distill.quant import onnx_latency
    from distill.quant.artifacts import export_float
    from distill.train import load_student

    model, info = load_student(student_file)
    frontend = Frontend(**info["frontend"])
    frames = frontend.num_frames(int(round(info["clip_seconds"] * frontend.sample_rate)))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_float(model, Path(tmp) / "student.onnx", info["n_features"], frames, 17)
        return onnx_latency(path, (1, info["n_features"], frames), batch=1, runs=runs)


def _needs_teacher_cache(cfg: DictConfig, arms: list[Arm]) -> bool:
    needs_teacher = any(
        t in ("logit", "temporal", "hint", "at", "shuffled") for a in arms for t in a.tokens
    )
    return needs_teacher and cfg.teacher.kind != "none" and bool(cfg.teacher.cache)


def result_row(student: str, arm: Arm, seed: int, results: dict[str, Any]) -> dict[str, Any]:
    """One CSV row from a run's results.json."""
    test = results["test"]
    metric = results["monitor"].split("/", 1)[1]
    return {
        "student": student,
        "arm": arm.name,
        "group": "control" if arm.is_control else "method",
        "seed": seed,
        "metric": metric,
        "test_score": test.get(f"test/{metric}"),
        "best_val": results.get("best_val"),
        "params": results.get("params"),
        "macs": results.get("macs"),
        "student_attention_in_span": test.get("test/student_attention_in_span"),
        "student_attention_entropy": test.get("test/student_attention_entropy"),
        "target_attention_in_span": test.get("test/target_attention_in_span"),
        "target_attention_entropy": test.get("test/target_attention_entropy"),
        "epochs": results.get("epochs"),
        "wall_seconds": results.get("wall_seconds"),
        "run_dir": results.get("run_dir"),
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write results.csv atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results.csv."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def summarise(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the test score per (student, arm), in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["student"], row["arm"]), []).append(row)
    summary = []
    for (student, arm), items in groups.items():
        scores = [float(r["test_score"]) for r in items]
        in_span = [
            float(r["student_attention_in_span"])
            for r in items
            if r.get("student_attention_in_span") not in (None, "")
        ]
        summary.append({
            "student": student,
            "arm": arm,
            "group": items[0]["group"],
            "metric": items[0]["metric"],
            "n": len(scores),
            "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "in_span": statistics.fmean(in_span) if in_span else None,
        })  # fmt: skip
    return summary
