"""`distill qat`, `distill export` and `distill bench`: int8 fine-tuning, export and speed."""

from __future__ import annotations

import argparse
import json
import sys

from distill.errors import UsageError


def _qat(args: argparse.Namespace) -> int:
    from distill.config import apply_overrides
    from distill.deploy.qat import run_qat
    from distill.pipeline.artifacts import load_module, resolve

    checkpoint, run_dir = resolve(args.target)
    cfg = load_module(checkpoint).cfg
    if args.overrides:
        cfg = apply_overrides(cfg, args.overrides)
    results = run_qat(checkpoint, cfg, run_dir=run_dir)
    print(json.dumps(results.to_dict(), indent=2))
    return 0


def _int8_ops(value: str) -> list[str] | str | None:
    return {"all": None, "auto": "auto"}.get(value, value.split(","))


def _with_recipe_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill --format, --int8 and --opset left unset from the run's recipe (`export.*`). A
    waveform or stateful variant is ONNX whatever the recipe says; a stateful one takes int8
    from the command line only (`--int8 --format tflite`: the step with an int8 student)."""
    from distill.deploy.export import recipe_export_settings

    recipe = recipe_export_settings(args.target)
    if args.format is None:
        args.format = recipe["format"] if args.variant == "features" else "onnx"
    if args.opset is not None and args.format != "onnx":
        raise UsageError("--opset applies to ONNX exports (--format onnx) only")
    if args.opset is None:
        args.opset = int(recipe["opset"])
    if args.int8 is None:
        args.int8 = bool(recipe["int8"]) and args.variant != "stateful"
    return args


def _export(args: argparse.Namespace) -> int:
    from distill.deploy.export import ParityError, export_run, format_report

    args = _with_recipe_defaults(args)
    if args.variant != "features":
        return _export_stream(args)
    if args.format == "tflite":
        return _export_tflite(args)
    if args.int8_io or args.percentile is not None:
        raise UsageError(
            "--int8-io and --percentile apply to --format tflite only (onnxruntime's "
            "percentile calibration keeps its own 99.999)"
        )
    try:
        report = export_run(args.target, sqnr_batches=args.sqnr_batches, **_onnx_options(args))
    except ParityError as err:
        print(f"distill export: error: {err}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


def _onnx_options(args: argparse.Namespace) -> dict:
    """The `export_run` options of the command line (all but target and sqnr_batches)."""
    if args.calibration_method == "mse":
        raise UsageError(
            "--calibration-method mse applies to --format tflite only (ONNX: minmax, "
            "percentile or entropy)"
        )
    return {
        "int8": args.int8,
        "split": args.split,
        "calib_batches": args.calib_batches,
        "limit_batches": args.limit_batches,
        "min_agreement": args.min_agreement,
        "calibration_method": args.calibration_method or "minmax",
        "int8_ops": _int8_ops(args.int8_ops),
        "calib_split": args.calib_split,
        "data_overrides": args.overrides,
        "opset": args.opset,
        "equalize": args.equalize is not False,
    }


def _export_stream(args: argparse.Namespace) -> int:
    """--variant waveform | stateful (distill.deploy.export_stream)."""
    from distill.deploy import export_stream as es
    from distill.deploy.export import ParityError, export_run, format_report
    from distill.deploy.onnx_stream import StreamParityError

    if args.int8_io or (args.format != "onnx" and args.variant != "stateful"):
        raise UsageError(
            f"--variant {args.variant} writes ONNX (stateful also --format tflite): drop "
            "--format tflite/--int8-io"
        )
    if args.percentile is not None or args.equalize is not None:
        raise UsageError(
            "--percentile and --no-equalize apply to --variant features --format tflite only"
        )
    if args.variant == "stateful" and args.overrides:
        raise UsageError("--variant stateful takes no data overrides")
    if args.variant == "stateful" and args.int8 and args.format != "tflite":
        raise UsageError("--variant stateful --int8 writes LiteRT: add --format tflite")
    try:
        if args.variant == "stateful":
            report = es.export_stateful_run(
                args.target, args.hop, args.window, args.split, opset=args.opset,
                format=args.format, int8=args.int8,
            )  # fmt: skip
            print(es.format_stream_report("stateful", report))
            return 0
        features = export_run(args.target, **_onnx_options(args))
        report = es.export_waveform_run(args.target, features, args.split, args.limit_batches)
    except (ParityError, StreamParityError) as err:
        print(f"distill export: error: {err}", file=sys.stderr)
        return 1
    print(format_report(features))
    print(es.format_stream_report("waveform", report))
    return 0


def _export_tflite(args: argparse.Namespace) -> int:
    from distill.deploy.export import ParityError
    from distill.deploy.litert_calibration import DEFAULT_PERCENTILE
    from distill.deploy.litert_export import export_tflite_run, format_tflite_report

    if args.calibration_method == "entropy" or args.int8_ops != "auto":
        raise UsageError(
            "--calibration-method entropy and --int8-ops apply to --format onnx only (LiteRT "
            "int8 is calibrated by minmax, percentile or mse and quantizes every operator)"
        )
    if args.sqnr_batches and not args.int8:
        raise UsageError("--sqnr-batches reports int8 against float: add --int8")
    try:
        report = export_tflite_run(
            args.target,
            int8=args.int8,
            split=args.split,
            calib_batches=args.calib_batches,
            limit_batches=args.limit_batches,
            min_agreement=args.min_agreement,
            int8_io=args.int8_io,
            calib_split=args.calib_split,
            data_overrides=args.overrides,
            sqnr_batches=args.sqnr_batches,
            calibration_method=args.calibration_method or "percentile",
            percentile=DEFAULT_PERCENTILE if args.percentile is None else args.percentile,
            equalize=args.equalize is not False,
        )
    except ParityError as err:
        print(f"distill export: error: {err}", file=sys.stderr)
        return 1
    print(format_tflite_report(report))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from distill.deploy.bench import bench_run, format_table

    rows = bench_run(
        args.target, runs=args.runs, warmup=args.warmup, limit_batches=args.limit_batches
    )
    print(format_table(rows))
    if not any(r["runtime"] == "litert" for r in rows):
        from distill.deploy.litert import missing_modules

        print(f"no LiteRT rows: the `litert` extra is not installed (missing "
              f"{', '.join(missing_modules())})", file=sys.stderr)  # fmt: skip
    return 0


TARGET_HELP = "run directory written by `distill fit`, or one of its .ckpt files"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment commands."""
    p = subparsers.add_parser("qat", help="fake-quant fine-tuning with the distillation losses")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. qat.epochs=3")
    p.set_defaults(func=_qat)

    _add_export(subparsers)
    p = subparsers.add_parser("bench", help="size and 1-thread latency: teacher, float, int8")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("--runs", type=int, default=200, help="timed runs per model and batch")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up runs")
    p.add_argument("--limit-batches", type=int, default=None, help="export check on N batches")
    p.set_defaults(func=_bench)


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` with its format, variant and int8 options."""
    p = subparsers.add_parser(
        "export", help="write the bare student as ONNX or LiteRT .tflite (float, int8)"
    )
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument(
        "--format",
        default=None,
        choices=["onnx", "tflite"],
        help="onnx (onnxruntime) or tflite (LiteRT; needs the `litert` extra); default: the "
        "run's recipe export.format (onnx)",
    )
    p.add_argument(
        "--variant",
        default="features",
        choices=["features", "waveform", "stateful"],
        help="features: features-in student (default); waveform: the log-mel frontend inside "
        "(waveform in, logits out); stateful: one streaming step with its state as inputs and "
        "outputs (causal students; docs/streaming.md)",
    )
    p.add_argument(
        "--hop", type=float, default=None, help="stateful: seconds per step (default: <= 0.1)"
    )
    p.add_argument(
        "--window", type=float, default=None, help="stateful: pooled window (default: training)"
    )
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write int8 (PTQ, and QAT if run; --variant stateful: the LiteRT step with an "
        "int8 student); default: the run's recipe export.int8 (off)",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset; default: the run's recipe export.opset (18)",
    )
    p.add_argument(
        "--int8-io",
        action="store_true",
        help="tflite: int8 input and output tensors (microcontrollers) instead of float",
    )
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("overrides", nargs="*", help="data.* overrides, e.g. data.root=data/other")
    p.add_argument("--calib-batches", type=int, default=8, help="calibration batches (int8)")
    p.add_argument(
        "--calib-split",
        default="val",
        choices=["train", "val"],
        help="split whose first batches calibrate int8 (never the test split)",
    )
    p.add_argument(
        "--calibration-method",
        default=None,
        choices=["minmax", "percentile", "entropy", "mse"],
        help="how int8 activation ranges are set from the calibration batches (onnx: minmax "
        "(default), percentile or entropy; tflite: percentile (default, at --percentile), "
        "minmax, or mse: the range of least estimated int8 error per tensor)",
    )
    p.add_argument(
        "--percentile",
        type=float,
        default=None,
        help="tflite, --calibration-method percentile: clip each activation range at this "
        "percentile of its values (default 99.999)",
    )
    p.add_argument(
        "--no-equalize",
        dest="equalize",
        action="store_const",
        const=False,
        default=None,
        help="int8: keep the per-channel activation ranges as trained (default: even them out "
        "where a ReLU feeds a convolution; the same function)",
    )
    p.add_argument(
        "--int8-ops",
        default="auto",
        help="operator types to quantize: comma-separated (e.g. Conv,Gemm,MatMul), all, or "
        "auto (all, or only Conv/Gemm/MatMul when some convs stay float)",
    )
    p.add_argument(
        "--sqnr-batches",
        type=int,
        default=0,
        help="report per-tensor int8 SQNR vs float on N batches (0: off)",
    )
    p.add_argument("--limit-batches", type=int, default=None, help="check on N batches only")
    p.add_argument(
        "--min-agreement", type=float, default=0.995, help="float argmax agreement required"
    )
    p.set_defaults(func=_export)
