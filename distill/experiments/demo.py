"""`distill demo`: the newcomer's end-to-end run on a small synthetic noisy keyword set."""

from __future__ import annotations

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
    stream_hours: float = 1.0  # negative audio of the best student's DET (streaming metric)
    detect_keywords: int = 20  # keywords in the long stream `distill detect` runs over


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
    total = 6
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

    t = _banner(5, total, "distill detect on a long stream, and the DET of the best student")
    streaming = stream_demo(Path(deploy["run_dir"]), out, options)
    print(f"({time.time() - t:.0f} s)")

    t = _banner(6, total, "write the report")
    report = write_report(student_cfg, out, csv_path, streaming["figures"], streaming["markdown"])
    table = (out / "summary.md").read_text()
    minutes = (time.time() - start) / 60
    print(f"\n{table}\n{deploy['text']}\n\n{streaming['text']}")
    print(f"results: {csv_path}\nreport:  {report}")
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
    from distill.pipeline.results import TeachResult
    from distill.pipeline.teach import teach

    for stage in stages:
        stage_results = Path(stage.teacher.path) / "results.json"
        if stage_results.is_file():
            print(f"{stage_results} exists: reusing that trained teacher")
            teacher = TeachResult.read(stage_results)
        else:
            print(f"-- {stage.name}: {stage.description}", flush=True)
            teacher = teach(stage, overwrite=True)  # no results.json: an unfinished teacher
        print(f"{stage.name} test: {teacher.test} ({time.time() - start:.0f} s)")


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


def stream_demo(run_dir: Path, out: Path, options: DemoOptions) -> dict:
    """The deployed half on the best student: its streaming metric over `stream_hours` of
    negative audio (DET; sliding window at 100 ms hops, or stateful where the student can),
    then `distill detect` on a long generated stream of `detect_keywords` keywords at known
    times, at the threshold of the 1 FA/h operating point; the figures and text for the report."""
    from distill.deploy.stream_run import EvalStreamOptions, eval_stream_model, format_summary

    cfg = load_recipe(str(run_dir / "config.yaml"))
    result = eval_stream_model(run_dir, cfg, options=EvalStreamOptions(hours=options.stream_hours))
    summary = format_summary(result)
    print(summary)
    threshold = result["at_fa_per_hour"]["1"]["pooled"]["threshold"]
    threshold = 0.5 if threshold is None else threshold
    found = detect_demo(run_dir, cfg, out / "detect", options.detect_keywords, threshold)
    at = result["at_fa_per_hour"]["0.5"]["pooled"]
    frr = "n/a" if at["frr"] is None else f"{100 * at['frr']:.1f}%"
    det_caption = (
        f"DET of the deployed student ({run_dir.name}) over {result['negative_hours']:.2f} h of "
        f"negative audio and {sum(result['positives'].values())} test keywords "
        f"({result['stream']['mode']} window, hop {result['stream']['hop_seconds']:g} s): "
        f"FRR {frr} at 0.5 false accepts per hour (pooled). Synthetic negatives only."
    )
    detect_caption = (
        f"distill detect on a {found['seconds']:.0f} s generated stream with "
        f"{found['keywords']} test keywords at known times (threshold {threshold:.3g}, the "
        f"1 FA/h operating point): {found['hits']} found, {found['false_accepts']} false "
        "accept(s). Top: waveform, the keywords' true spans marked in black at its foot; bottom: "
        "smoothed posteriors, thresholds (dashed), detections (shaded)."
    )
    markdown = "\n".join(["### Streaming (deployed student)", "", "```", summary, "```", "",
                          detect_caption])  # fmt: skip
    figures = [(run_dir / "stream_eval" / "det.png", det_caption), (found["plot"], detect_caption)]
    text = f"{summary}\n{detect_caption}\ndetections: {found['csv']}"
    return {"figures": figures, "markdown": markdown, "text": text, "result": result, **found}


def detect_demo(run_dir: Path, cfg, out: Path, keywords: int, threshold: float) -> dict:  # noqa: ANN001
    """`distill detect` (its library path) on a generated stream of test keywords at known
    times; the detections, its plot, and the hits and false accepts by the metric's rules."""
    from distill.deploy.decisions import DecisionConfig
    from distill.deploy.detect import add_results, detect_files, detection_record, write_detections
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.stream import StreamConfig, Streamer
    from distill.deploy.stream_eval import evaluate_detections
    from distill.deploy.streams import build_streams, options_from_recipe

    opts = options_from_recipe(cfg, negative_hours=0.0, positives=keywords)
    streams = build_streams(cfg.data.root, out / "stream", opts, overwrite=True)
    wav = streams.streams[0]
    model = load_detector_model(run_dir)
    stream, decisions = StreamConfig(hop_seconds=0.1), DecisionConfig(threshold=threshold)
    record = detection_record(model, Streamer(model, stream).info, decisions)
    results, _ = detect_files(model, [wav.path], stream, decisions)
    add_results(record, results)
    events = streams.events[wav.name]
    truth = {str(wav.path): [(e.cls, e.onset, e.offset) for e in events]}
    paths = write_detections(out, record, results, plot=True, truth=truth)
    kws = list(decisions.resolve(model.class_names))
    score = evaluate_detections([(wav.name, wav.seconds, events, record["detections"])], kws)
    print(f"distill detect {run_dir} {wav.path} --threshold {threshold:.3g} --plot --out {out}")
    return {
        "seconds": wav.seconds,
        "keywords": len(events),
        "hits": score["pooled"]["hits"],
        "false_accepts": score["pooled"]["false_accepts"],
        "plot": Path(record["plots"][0]),
        "csv": paths["csv"],
    }
