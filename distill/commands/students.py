"""`distill students`: the student zoo with parameters, MACs and default taps."""

from __future__ import annotations

import argparse

FRAMES_PER_SECOND = 100  # 10 ms hop; a clip of s seconds gives 100 s + 1 frames (101 for 1 s)


def _table(args: argparse.Namespace) -> int:
    from distill import students

    if args.seconds <= 0:
        raise SystemExit(f"distill students: --seconds must be > 0, got {args.seconds}")
    if args.n_features < 1:
        raise SystemExit(f"distill students: --n-features must be >= 1, got {args.n_features}")
    frames = int(round(args.seconds * FRAMES_PER_SECOND)) + 1
    rows = [("name", "params", "MACs", "input (F x T)", "default tap")]
    for name in students.available():
        spec = students.spec(name)
        if spec.paper_input is not None and not args.no_paper_input:
            n_feat, n_frames = spec.paper_input
            source = f"{n_feat} x {n_frames} (paper)"
        else:
            n_feat, n_frames = args.n_features, frames
            source = f"{n_feat} x {n_frames} ({args.seconds:g} s)"
        try:
            model = students.create(name, num_classes=args.num_classes, n_features=n_feat)
        except ValueError as err:  # e.g. BC-ResNet needs a multiple of 40 bins
            rows.append((name, "-", "-", source, f"not buildable: {err}"))
            continue
        params = students.count_params(model)
        macs = students.count_macs(model, (1, n_feat, n_frames))
        tap = f"{spec.default_tap} ({spec.tap_layout})"
        rows.append((name, f"{params / 1e3:,.1f}K", f"{macs / 1e6:,.2f}M", source, tap))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ]
        print(" | ".join([*cells, row[-1]]))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `students`."""
    p = subparsers.add_parser(
        "students",
        help="list the built-in students with parameters, MACs and default taps",
        description="MACs use the model's paper input (F x T) where it has one, else "
        "--n-features bins x (100 x --seconds + 1) frames; the 'input' column says which.",
    )
    p.add_argument("--seconds", type=float, default=1.0, help="clip length for MACs (default 1)")
    p.add_argument("--n-features", type=int, default=40, help="feature bins (default 40)")
    p.add_argument("--num-classes", type=int, default=12, help="output classes (default 12)")
    p.add_argument(
        "--no-paper-input",
        action="store_true",
        help="use --n-features/--seconds for every model instead of its paper input",
    )
    p.set_defaults(func=_table)
