"""`distill demo`: the newcomer's end-to-end run on a small synthetic noisy keyword set."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from distill.config import load_recipe
from distill.errors import BadValueError


@dataclass
class DemoOptions:
    """Sizes of the demo; recipe overrides (e.g. trainer.max_epochs=30) scale the training."""

    per_word: int = 150  # clips per keyword of the 12-class task
    per_unknown: int = 12  # clips per other Speech Commands word (the _unknown_ class)
    speakers: int = 160
    students: tuple[str, ...] = ("tc_resnet8", "att_rnn")
    losses: tuple[str, ...] = ("none", "logit", "temporal")
    seeds: int = 1
    jobs: int = 2  # student runs trained side by side (CPU threads split between them)
    qat_epochs: int = 2
    # teacher stages, in order: pretrain on clean 1 s keywords, then fine-tune on noisy clips
    teacher_recipes: tuple[str, ...] = ("demo_teacher_clean", "demo_teacher")
    student_recipe: str = "demo"
    workers: int | None = None


def _banner(step: int, total: int, text: str) -> float:
    print(f"\n=== demo step {step}/{total}: {text}", flush=True)
    return time.time()


def run_demo(options: DemoOptions, overrides: list[str] | None = None) -> dict:
    """Synthesise data, train the teacher, cache it, compare students and losses; return paths."""
    from distill.experiments.compare import run_grid
    from distill.report.build import write_report

    overrides = list(overrides or [])
    stages = [load_recipe(name, overrides) for name in options.teacher_recipes]
    teacher_cfg = stages[-1]
    student_cfg = load_recipe(options.student_recipe, overrides)
    if Path(teacher_cfg.teacher.path) != Path(student_cfg.teacher.path):
        raise BadValueError(
            f"the demo recipes disagree on teacher.path ({teacher_cfg.teacher.path} vs "
            f"{student_cfg.teacher.path})"
        )
    start = time.time()
    total = 5
    root = Path(student_cfg.data.root)
    t = _banner(1, total, f"synthesise the noisy keyword bank in {root}")
    synthesise_bank(root, options)
    print(f"({time.time() - t:.0f} s)")

    t = _banner(2, total, f"train the teacher into {teacher_cfg.teacher.path}")
    train_teacher(stages, t)

    t = _banner(3, total, "cache the teacher and distil the students")
    out = Path(student_cfg.run_dir) / "compare"
    csv_path = run_grid(
        student_cfg,
        list(options.students),
        list(options.losses),
        options.seeds,
        out,
        jobs=options.jobs,
    )
    print(f"({time.time() - t:.0f} s)")

    t = _banner(4, total, "quantization-aware fine-tuning and int8 export of the best student")
    deploy = deploy_best(csv_path, options.qat_epochs)
    print(f"({time.time() - t:.0f} s)")

    t = _banner(5, total, "write the report")
    report = write_report(student_cfg, out, csv_path)
    table = (out / "summary.md").read_text()
    minutes = (time.time() - start) / 60
    print(f"\n{table}\n{deploy['text']}\nresults: {csv_path}\nreport:  {report}")
    print(f"demo took {minutes:.1f} min")
    return {
        "csv": str(csv_path),
        "report": str(report),
        "minutes": minutes,
        "deployed": deploy["run_dir"],
    }


def synthesise_bank(root: Path, options: DemoOptions) -> None:
    """The demo's noisy keyword bank in `root` (reused when its dataset.json exists)."""
    from distill.data.speech_commands import CORE_WORDS
    from distill.data.synth.kws import synth_kws
    from distill.data.synth.words import SPEECH_COMMANDS_V2

    if (root / "dataset.json").is_file():
        print(f"{root} exists: reusing it")
    else:
        synth_kws(
            root,
            words=list(CORE_WORDS),
            unknown_words=[w for w in SPEECH_COMMANDS_V2 if w not in CORE_WORDS],
            per_word=options.per_word,
            per_unknown=options.per_unknown,
            speakers=options.speakers,
            workers=options.workers,
        )


def train_teacher(stages: list, start: float) -> None:
    """Train the teacher recipes in order (a stage whose results.json exists is reused)."""
    from distill.pipeline.teach import teach

    for stage in stages:
        stage_results = Path(stage.teacher.path) / "results.json"
        if stage_results.is_file():
            print(f"{stage_results} exists: reusing that trained teacher")
            teacher = json.loads(stage_results.read_text())
        else:
            print(f"-- {stage.name}: {stage.description}", flush=True)
            teacher = teach(stage)
        print(f"{stage.name} test: {teacher['test']} ({time.time() - start:.0f} s)")


def deploy_best(csv_path: Path, qat_epochs: int) -> dict:
    """QAT-fine-tune the best method run, export float / PTQ / QAT int8 ONNX and benchmark them."""
    from distill.deploy.bench import bench_run, format_table
    from distill.deploy.export import export_run, format_report
    from distill.deploy.qat import run_qat
    from distill.report.results import read_rows

    methods = [r for r in read_rows(csv_path) if r["group"] == "method"]
    best = max(methods, key=lambda r: float(r["test_score"]))
    run_dir = Path(best["run_dir"])
    print(f"best: {best['student']} with {best['arm']} (test {float(best['test_score']):.4f})")
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    run_qat(
        checkpoint, load_recipe(str(run_dir / "config.yaml"), [f"qat.epochs={qat_epochs}"]), run_dir
    )
    exported = format_report(export_run(run_dir, int8=True, split="test"))
    bench = format_table(bench_run(run_dir, runs=50))
    text = f"{best['student']} / {best['arm']} deployed:\n{exported}\n\n{bench}"
    return {"run_dir": str(run_dir), "text": text}
