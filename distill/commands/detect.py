"""`distill detect MODEL AUDIO...`: keyword / event detections in long recordings."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from distill.errors import BadValueError, UsageError

DEFAULT_HOP = 0.1

DETECT_HELP = """\
Run a trained student (or its exported waveform-in / stateful ONNX) over long recordings
(streamed from disk in blocks, never loaded whole) and write its detections as CSV and JSON
(and with --plot a PNG per file).
Audio of any sample rate and channel count is converted: channels averaged, resampled to the
model's rate with torchaudio. Posteriors come every --hop seconds, statefully where the student
allows it (causal student, log-mel frontend without per-clip normalisation) else from a sliding
window; decisions: moving average over --smooth hops, per-class --threshold, --refractory.
See docs/streaming.md."""


def _thresholds(values: list[str]) -> tuple[float | None, dict[str, float]]:
    default, per_class = None, {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise BadValueError(
                f"--threshold {value!r}: expected a number or CLASS=NUMBER"
            ) from None
        if sep:
            per_class[name] = threshold
        else:
            default = threshold
    return default, per_class


def _configs(args: argparse.Namespace, model: Any) -> tuple[Any, Any]:
    from distill.deploy.decisions import DecisionConfig
    from distill.deploy.stream import StreamConfig

    default, per_class = _thresholds(args.threshold)
    decisions = DecisionConfig(
        smooth_hops=args.smooth,
        threshold=0.5 if default is None else default,
        class_thresholds=per_class,
        refractory_seconds=args.refractory,
        classes=tuple(args.keyword) if args.keyword else None,
    )
    # a stateful ONNX model steps a fixed hop (its hop_seconds); every other model: 0.1 s
    hop = args.hop if args.hop is not None else getattr(model, "hop_seconds", DEFAULT_HOP)
    stream = StreamConfig(mode=args.mode, hop_seconds=hop, window_seconds=args.window)
    return stream, decisions


def _write(args: argparse.Namespace, record: dict[str, Any], results: list[Any]) -> None:
    from distill.deploy.detect import add_results, write_detections

    add_results(record, results)
    write_detections(args.out, record, results, plot=args.plot)
    n = len(record["detections"])
    print(f"distill detect: {n} detection(s) in {len(results)} file(s) -> {args.out}")
    for skip in record["skipped"]:
        print(f"distill detect: skipped {skip['file']}: {skip['reason']}")


def _total_seconds(paths: list[Path]) -> float:
    from distill.data.audio import AudioFileError
    from distill.deploy.audio_source import audio_header

    total = 0.0
    for path in paths:
        with contextlib.suppress(AudioFileError):  # reported (or skipped) in its turn
            total += audio_header(path).seconds
    return total


def _detect(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from distill.deploy.audio_source import find_audio
    from distill.deploy.detect import detect_files, detection_record
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.stream import Streamer, unseen_history_note

    if args.threads < 1:
        raise BadValueError(f"--threads must be >= 1, given {args.threads}")
    torch.set_num_threads(args.threads)
    if not args.audio and not args.mic:
        raise UsageError("distill detect: give AUDIO files or folders, or --mic")
    if args.audio and args.mic:
        raise UsageError("distill detect: give AUDIO or --mic, not both")
    model = load_detector_model(args.model, activation=args.activation)
    stream, decisions = _configs(args, model)
    record = detection_record(model, Streamer(model, stream).info, decisions)
    note = unseen_history_note(record["model"], record["stream"])
    if note:
        print(f"distill detect: {note}")
    if args.mic:
        from distill.deploy.microphone import listen

        result = listen(model, stream, decisions, seconds=args.mic_seconds, device=args.device)
        results = [result]
    else:
        paths = find_audio(args.audio)
        total = _total_seconds(paths)
        # a bar over the seconds of audio, on a terminal only (disable=None)
        with tqdm(total=total, unit="s", desc="detect", disable=None if total else True) as bar:
            results, record["skipped"] = detect_files(
                model, paths, stream, decisions, args.skip_bad, progress=bar.update
            )
    _write(args, record, results)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `distill detect`."""
    p = subparsers.add_parser(
        "detect",
        help="detect keywords / events in long audio with a trained student",
        description=DETECT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        help="run directory, .ckpt, saved student (.safetensors), or an ONNX model from "
        "distill export --variant waveform|stateful",
    )
    p.add_argument("audio", nargs="*", help="audio files or folders (.wav, .flac, .ogg)")
    p.add_argument("--out", default="detections", help="output folder (default: detections)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "sliding", "stateful"],
        help="auto (default): stateful where the student allows it, else sliding window",
    )
    p.add_argument(
        "--hop",
        type=float,
        default=None,
        help="seconds between posteriors (default 0.1; a stateful ONNX model: its step)",
    )
    p.add_argument(
        "--window", type=float, default=None, help="window seconds (default: training clip)"
    )
    _decision_arguments(p)
    p.add_argument("--plot", action="store_true", help="also write a PNG per file")
    p.add_argument(
        "--skip-bad", action="store_true", help="list unreadable audio as skipped, not fail"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--mic",
        action="store_true",
        help="listen to the microphone instead of files (needs the optional package "
        "sounddevice, not installed by default); Ctrl-C stops",
    )
    p.add_argument("--mic-seconds", type=float, default=None, help="stop --mic after N seconds")
    p.add_argument("--device", default=None, help="--mic input device (sounddevice name/index)")
    p.set_defaults(func=_detect)


def _decision_arguments(p: argparse.ArgumentParser) -> None:
    """Smoothing, thresholds, refractory period, keyword choice and activation."""
    p.add_argument("--smooth", type=int, default=3, help="moving average over N hops (3)")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[CLASS=]P",
        help="detection threshold (default 0.5); CLASS=P for one class; repeatable",
    )
    p.add_argument(
        "--refractory",
        type=float,
        default=1.0,
        help="seconds after a detection in which a new one of its class merges into it (1.0)",
    )
    p.add_argument(
        "--keyword",
        action="append",
        default=[],
        help="class to detect (repeatable; default: every class not starting with '_')",
    )
    p.add_argument(
        "--activation",
        choices=["softmax", "sigmoid"],
        default=None,
        help="posteriors from logits (default: softmax for single-label, sigmoid multi-label)",
    )
