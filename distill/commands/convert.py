"""`distill convert OLD --trust`: rewrite artifacts of older versions in the safe format.

Older versions saved students as pickles (`student.pt`, `qat/qat_student.pt`) and could write
checkpoints holding Python objects beyond tensors and plain data. Everything else in distill
refuses such files without unpickling them; this command is the one place that unpickles
(`torch.load(..., weights_only=False)`, which runs any code the file holds), and only after
the user says `--trust`. It writes `student.safetensors` beside an old `student.pt` (the old
file is kept) and rewrites a checkpoint in place with plain data only (the original is kept as
`NAME.ckpt.old`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from distill.errors import BadValueError, MissingFileError, UsageError

LEGACY_STUDENTS = ("student.pt", "qat/qat_student.pt")


def _convert(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not args.trust:
        raise UsageError(
            f"distill convert unpickles {path}, which runs any code it holds: add --trust only "
            "for files you trust (e.g. written by your own older runs)"
        )
    for line in convert_artifacts(path, Path(args.out) if args.out else None):
        print(line)
    return 0


def convert_artifacts(path: Path, out: Path | None = None) -> list[str]:
    """Convert an old student file, a checkpoint, or every old artifact of a run directory;
    one line per file saying what was done. Unpickles: for trusted files only."""
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    if path.is_dir():
        if out is not None:
            raise UsageError("distill convert: --out names one file; give a file, not a folder")
        found = [path / p for p in LEGACY_STUDENTS if (path / p).is_file()]
        found += sorted((path / "checkpoints").glob("*.ckpt"))
        if not found:
            return [f"{path}: no old student (.pt) and no checkpoint to convert"]
        return [convert_file(p) for p in found]
    return [convert_file(path, out)]


def convert_file(path: Path, out: Path | None = None) -> str:
    """Convert one file (.ckpt: a checkpoint; otherwise an old pickled student)."""
    if path.suffix == ".ckpt":
        return convert_checkpoint(path, out)
    return convert_student(path, out)


def convert_student(path: Path, out: Path | None = None) -> str:
    """An old pickled student (`torch.save` of a dict with its state_dict and config) as a
    student file (safetensors + JSON config), checked by loading it back."""
    import torch

    from distill.pipeline.artifacts import load_student, write_student
    from distill.students.hub import STUDENT_KEYS

    out = out or path.with_suffix(".safetensors")
    payload = torch.load(path, map_location="cpu", weights_only=False)  # trusted by --trust
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise BadValueError(f"{path} is not a student of an older distill (no state_dict in it)")
    missing = [k for k in STUDENT_KEYS if k not in payload]
    if missing:
        raise BadValueError(f"{path} is not a student of an older distill (no {missing[0]})")
    info = plain_data({k: v for k, v in payload.items() if k != "state_dict"}, str(path))
    write_student(out, payload["state_dict"], info)
    load_student(out)
    return f"{path} -> {out} (student; the old file is kept)"


def convert_checkpoint(path: Path, out: Path | None = None) -> str:
    """A checkpoint rewritten with tensors and plain data only (readable with
    `weights_only=True`); in place unless `out`, keeping the original as `NAME.ckpt.old`."""
    import torch

    from distill.errors import UnsafeArtifactError
    from distill.files import atomic_path
    from distill.pipeline.artifacts import read_checkpoint

    try:
        read_checkpoint(path)
        if out is None:
            return f"{path}: already safe, left as it is"
    except UnsafeArtifactError:
        pass
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # trusted by --trust
    clean = plain_data(ckpt, str(path))
    dest = out or path
    backup = ""
    if dest == path:
        shutil.copy2(path, path.with_name(path.name + ".old"))
        backup = f"; the original is kept as {path.name}.old"
    with atomic_path(dest) as tmp:
        torch.save(clean, tmp)
    read_checkpoint(dest)
    return f"{path} -> {dest} (checkpoint, plain data only{backup})"


def plain_data(obj: Any, where: str) -> Any:
    """`obj` with recipe containers, paths and numpy values turned into the plain data and
    tensors that `weights_only=True` reads; anything else is refused, naming where it is."""
    import numpy as np
    import torch
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.Size)):
        return obj
    if isinstance(obj, (DictConfig, ListConfig)):
        return plain_data(OmegaConf.to_container(obj, resolve=True), where)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {plain_data(k, where): plain_data(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [plain_data(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise BadValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which a safe artifact "
        "cannot hold: convert it by hand or retrain"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert`."""
    p = subparsers.add_parser(
        "convert",
        help="rewrite a trusted artifact of an older version (student.pt, a checkpoint, or a "
        "whole run directory) in the safe format",
    )
    p.add_argument("path", help="old student .pt, .ckpt, or run directory")
    p.add_argument(
        "--trust",
        action="store_true",
        help="required: the old file is unpickled, which runs any code it holds",
    )
    p.add_argument("--out", default=None, help="where to write (one file; default: see above)")
    p.set_defaults(func=_convert)
