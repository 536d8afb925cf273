"""The wake-word metric of one model, end to end (`distill eval-stream`, `compare --stream-eval`).

`eval_stream_model` finds the model's recipe (the run's config.yaml, or one given), builds or
reuses the test streams of its data (`distill.deploy.streams`), runs the streaming detector over
them, applies the counting rules (`distill.deploy.stream_eval`) and writes `stream_eval.json`
and `det.png`. A result whose inputs did not change (same streams, model file, stream and
decision settings, metric version) is reused instead of scored again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.caches.records import sha256_of_json
from distill.errors import BadValueError, MissingFileError, UsageError

CONFIG = "config.yaml"
RESULT = "stream_eval.json"
OUT_DIR = "stream_eval"


@dataclass(frozen=True)
class EvalStreamOptions:
    """What to build and how to score: negative hours, seed (None: the recipe's data seed),
    a folder of real negative audio, the streaming and decision settings."""

    hours: float = 1.0
    seed: int | None = None
    negatives: str | None = None
    negatives_hours: float | None = None
    positives: int = 0
    streams_dir: str | None = None  # default: <recipe run_dir>/streams/<fingerprint>
    mode: str = "auto"
    hop_seconds: float | None = None  # None: 0.1 s, or a stateful ONNX model's step
    window_seconds: float | None = None
    smooth_hops: int = 3
    refractory_seconds: float = 1.0
    tolerance: float = 0.5
    reuse: bool = True


def run_folder(model: str | Path) -> Path | None:
    """The run folder of a model path (the first of it and its two parents with config.yaml)."""
    path = Path(model)
    for folder in [path, *list(path.parents)[:2]] if path.is_dir() else list(path.parents)[:2]:
        if (folder / CONFIG).is_file():
            return folder
    return None


def model_recipe(
    model: str | Path, recipe: str | None = None, overrides: list[str] | None = None
) -> Any:
    """The recipe whose data the model is evaluated on: `recipe` when given, else the run's
    config.yaml; `overrides` (e.g. data.root=...) on top."""
    from distill.config import apply_overrides, load_recipe

    if recipe is not None:
        return load_recipe(recipe, overrides)
    run = run_folder(model)
    if run is None:
        raise MissingFileError(
            f"no {CONFIG} beside {model} (nor in its two parent folders): give --recipe, the "
            "recipe whose data built the model"
        )
    cfg = load_recipe(str(run / CONFIG))
    return apply_overrides(cfg, overrides) if overrides else cfg


def build_test_streams(cfg: Any, options: EvalStreamOptions) -> Any:
    """Build (or reuse) the recipe's test streams for these options."""
    from distill.deploy.streams import build_streams, fingerprint, options_from_recipe

    extra: dict[str, Any] = {"negative_hours": options.hours, "positives": options.positives}
    if options.seed is not None:
        extra["seed"] = options.seed
    if options.negatives:
        extra |= {"real_dir": options.negatives, "real_hours": options.negatives_hours}
    opts = options_from_recipe(cfg, **extra)
    bank = Path(cfg.data.root)
    folder = options.streams_dir
    if folder is None:
        key = sha256_of_json(fingerprint(bank, opts))[:12]
        folder = Path(cfg.run_dir) / "streams" / key
    return build_streams(bank, folder, opts)


def _model_key(model: str | Path) -> list:
    """The file the detector loads (a run's student, else its best checkpoint): name, size,
    modification time."""
    from distill.pipeline.artifacts import STUDENT_FILE

    path = Path(model)
    if path.is_dir():
        student = path / STUDENT_FILE
        path = student if student.is_file() else path / "checkpoints" / "best.ckpt"
    return [str(path), path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else []


def eval_stream_model(
    model: str | Path,
    cfg: Any,
    out_dir: str | Path | None = None,
    options: EvalStreamOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score `model` (run dir, .ckpt, student file or exported .onnx) on the test streams of
    `cfg`'s data; write and return the result (`stream_eval.json`, `det.png` in `out_dir`)."""
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.stream import StreamConfig, Streamer, unseen_history_note
    from distill.deploy.stream_eval import METRIC_VERSION, sweep_decider
    from distill.deploy.stream_report import evaluate_stream_set, write_result

    options = options or EvalStreamOptions()
    check_options(options)
    out = Path(out_dir) if out_dir else default_out_dir(model)
    det = load_detector_model(model)
    _check_classes(det.class_names, cfg)
    streams = build_test_streams(cfg, options)
    hop = options.hop_seconds or getattr(det, "hop_seconds", 0.1)
    config = StreamConfig(options.mode, hop, options.window_seconds)
    stream_info = {k: v for k, v in Streamer(det, config).info.items() if k != "seconds"}
    key = sha256_of_json([streams.meta["fingerprint"], stream_info, asdict(options),
                          _model_key(model), METRIC_VERSION])  # fmt: skip
    note = unseen_history_note(det.describe(), stream_info)
    old = out / RESULT
    if options.reuse and old.is_file():
        result = json.loads(old.read_text())
        if result.get("key") == key:
            return result | {"reused": True, "notes": [note] if note else []}
    decide = sweep_decider(det.class_names, options.smooth_hops, options.refractory_seconds)
    score = _scorer(det, config, streams, progress)
    result = evaluate_stream_set(streams, score, det.class_names, decide=decide,
                                 tolerance=options.tolerance)  # fmt: skip
    result |= {"key": key, "model": det.describe(), "stream": stream_info,
               "options": asdict(options), "notes": [note] if note else []}  # fmt: skip
    name = Path(model).name
    write_result(result, out, title=f"DET of {name} over {result['negative_hours']:.2f} h")
    return result


def default_out_dir(model: str | Path) -> Path:
    """<run>/stream_eval for a run, its checkpoint or student; <run>/stream_eval/<stem> for
    another file (an exported ONNX); <folder of the file>/stream_eval without a run."""
    path = Path(model)
    run = run_folder(path)
    if run is None:
        return (path if path.is_dir() else path.parent) / OUT_DIR
    if path.is_dir() or path.suffix in (".ckpt", ".safetensors"):
        return run / OUT_DIR
    return run / OUT_DIR / path.stem


def _check_classes(names: list[str], cfg: Any) -> None:
    from distill.data.speech_commands import config_classes

    expected = config_classes(cfg.data)
    if list(names) != list(expected):
        raise BadValueError(
            f"the model's classes {names} differ from those of the recipe's data "
            f"{cfg.data.root}: {expected}"
        )


def _scorer(det: Any, config: Any, streams: Any, progress: bool) -> Any:
    from tqdm import tqdm

    from distill.deploy.audio_source import read_blocks
    from distill.deploy.stream import stream_posteriors

    total = sum(s.seconds for s in streams.streams)
    bar = tqdm(total=total, unit="s", desc="eval-stream", disable=None if progress else True)

    def score(path: Path) -> tuple[Any, Any]:
        def blocks():
            for block in read_blocks(path, det.sample_rate):
                bar.update(block.numel() / det.sample_rate)
                yield block

        post = stream_posteriors(det, blocks(), config)
        return post.times, post.scores

    return score


def frr_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The grid's streaming columns (distill.report.results.STREAM_COLUMNS) of a result:
    pooled FRR at each target FA/h, latency at 0.5 FA/h, negative hours."""
    at = result["at_fa_per_hour"]
    columns = {f"frr_at_{t}_fa_h": at[t]["pooled"]["frr"] for t in at}
    mid = at.get("0.5", next(iter(at.values())))["pooled"]
    columns["stream_latency_median_s"] = mid["latency_median_s"]
    columns["stream_negative_hours"] = result["negative_hours"]
    return columns


def format_summary(result: dict[str, Any], paths: dict[str, Path] | None = None) -> str:
    """FRR at each target FA/h, pooled, mean over keywords and per keyword; the latency."""
    at = result["at_fa_per_hour"]
    targets = list(at)
    fmt = lambda v: "   -  " if v is None else f"{100 * v:6.1f}"  # noqa: E731
    lines = [
        f"{result['negative_hours']:.2f} h of negative audio, "
        f"{sum(result['positives'].values())} keywords; mode {result['stream']['mode']}, hop "
        f"{result['stream']['hop_seconds']:g} s, window {result['stream']['window_seconds']:g} s",
        "FRR (%) at FA/h       " + "".join(f"{t:>7}" for t in targets),
        "pooled (one threshold)" + "".join(" " + fmt(at[t]["pooled"]["frr"]) for t in targets),
        "mean over keywords    " + "".join(" " + fmt(at[t]["mean_frr"]) for t in targets),
    ]
    for kw in result["keywords"]:
        row = "".join(" " + fmt(at[t]["per_keyword"][kw]["frr"]) for t in targets)
        lines.append(f"  {kw:20s}{row}")
    for t in targets:
        p = at[t]["pooled"]
        if p["latency_median_s"] is not None:
            lines.append(
                f"latency at {t} FA/h (pooled): median {p['latency_median_s']:.2f} s, "
                f"90th percentile {p['latency_p90_s']:.2f} s after the keyword's end"
            )
    below = [t for t in targets if at[t]["below_resolution"]]
    if below:
        lines.append(
            f"below the resolution of {result['fa_per_hour_resolution']:.2g} FA/h: {below} "
            "(met only with no false accept at all)"
        )
    if result.get("reused"):
        lines.append("(reused: the streams, the model and the settings are unchanged)")
    lines += result.get("notes", [])
    return "\n".join(lines)


def check_options(options: EvalStreamOptions) -> None:
    """Refuse options that cannot give a metric."""
    if not options.hours > 0 and not options.negatives:
        raise UsageError("--hours must be > 0 (or give --negatives): FA/h needs negative audio")


__all__ = [
    "EvalStreamOptions",
    "build_test_streams",
    "check_options",
    "default_out_dir",
    "eval_stream_model",
    "format_summary",
    "frr_columns",
    "model_recipe",
    "run_folder",
]
