"""Where a run's files live (checkpoints, the bare student, QAT and export folders) and loading
them without running code: students are safetensors files whose header holds their config as
JSON; checkpoints are read with `torch.load(..., weights_only=True)`. An artifact that would need
full unpickling (a crafted file, or a student of an older distill) is refused with
`UnsafeArtifactError`; `distill convert OLD --trust` rewrites a trusted old one."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from distill.core.module import DistillModule
from distill.errors import BadValueError, MissingFileError, UnsafeArtifactError
from distill.students.hub import looks_pickled

STUDENT_FILE = "student.safetensors"
QAT_DIR = "qat"
EXPORT_DIR = "export"
QAT_STUDENT = "qat_student.safetensors"
LEGACY_SUFFIX = ".pt"  # students of older versions: pickled with torch.save


def convert_hint(path: str | Path) -> str:
    """How to turn a trusted old artifact into the safe format."""
    return (
        f"if you trust its origin (e.g. your own older run), convert it once: "
        f"distill convert {path} --trust"
    )


# -- students ------------------------------------------------------------------------------------


def student_info(module: DistillModule) -> dict[str, Any]:
    """What rebuilds the module's plain student and feeds it: JSON-serialisable."""
    cfg = module.cfg
    return {
        "name": cfg.student.target or cfg.student.name,
        "num_classes": len(module.class_names),
        "n_features": module.frontend.n_features,
        "kwargs": OmegaConf.to_container(cfg.student.kwargs, resolve=True),
        "class_names": list(module.class_names),
        "frontend": OmegaConf.to_container(cfg.frontend, resolve=True),
        "clip_seconds": module.clip_seconds,
        "history_seconds": module.history_seconds,
        "detection_window_seconds": module.detection_window_seconds,
        "task": module.task,  # single_label (softmax) or multi_label (sigmoid)
    }


def save_student(module: DistillModule, path: str | Path) -> None:
    """The plain student on its own: a safetensors file of its weights whose header holds
    `student_info` (what `students.create` needs, classes, frontend, clip length)."""
    write_student(path, module.student_state_dict(), student_info(module))


def write_student(path: str | Path, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write a student file (weights + JSON config in the header) atomically."""
    from distill.students.hub import write_student_file

    write_student_file(path, state, info)


def read_student_info(path: str | Path) -> dict[str, Any]:
    """The config in a student file's header (no weights read, nothing unpickled)."""
    from distill.students.hub import read_student_header

    path = _student_path(path)
    return read_student_header(path, pickle_hint=convert_hint(path))


def load_student(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved student with `students.create` (no training code); returns (model, info).
    Nothing in the file is unpickled: an old pickled student is refused (UnsafeArtifactError)."""
    from safetensors.torch import load_file

    from distill import students

    info = read_student_info(path)
    model = students.create(
        info["name"], num_classes=info["num_classes"], n_features=info["n_features"],
        **info["kwargs"],
    )  # fmt: skip
    try:
        model.load_state_dict(load_file(str(_student_path(path))))
    except RuntimeError as err:
        raise BadValueError(
            f"{path}: the weights do not fit student {info['name']!r}: {_first_line(err)}"
        ) from None
    return model.eval(), info


def init_student_from(module: DistillModule, source: str | Path) -> Path:
    """Load the weights of a saved student (a student file, or a run directory holding one)
    into `module.student` before training; the file must hold the same student (name, kwargs),
    classes and feature count. Returns the file read."""
    path = Path(source)
    path = path / STUDENT_FILE if path.is_dir() else path
    try:
        saved_model, saved = load_student(path)
    except MissingFileError:
        raise MissingFileError(
            f"student.init_from={source}: no student file there (a {STUDENT_FILE} or a run "
            "directory of `distill fit` holding one)"
        ) from None
    wanted = student_info(module)
    for key in ("name", "kwargs", "class_names", "n_features"):
        if saved.get(key) != wanted[key]:
            raise BadValueError(
                f"student.init_from={path}: its {key} is {saved.get(key)!r}, the recipe's "
                f"student has {wanted[key]!r}"
            )
    differing = sorted(
        k for k in set(saved["frontend"]) | set(wanted["frontend"])
        if saved["frontend"].get(k) != wanted["frontend"].get(k)
    )  # fmt: skip
    if differing:
        print(
            f"distill fit: student.init_from={path} was trained with another frontend "
            f"({', '.join(f'frontend.{k}' for k in differing)} differ); its weights start anyway"
        )
    module.student.load_state_dict(saved_model.state_dict())
    return path


def load_qat_student(run_dir: Path) -> tuple[nn.Module, dict] | None:
    """The QAT-fine-tuned float student of a run, or None when `distill qat` has not run."""
    path = run_dir / QAT_DIR / QAT_STUDENT
    legacy = path.with_suffix(LEGACY_SUFFIX)
    return load_student(path) if path.is_file() or legacy.is_file() else None


def _student_path(path: str | Path) -> Path:
    """The student file to read; a missing one whose old pickled twin exists is refused."""
    path = Path(path)
    if path.is_file():
        return path
    legacy = path.with_suffix(LEGACY_SUFFIX)
    if legacy != path and legacy.is_file():
        raise UnsafeArtifactError(
            f"{path} is missing but {legacy} is there: a pickled student of an older version, "
            f"which could run code when loaded: refused; {convert_hint(legacy)}"
        )
    raise MissingFileError(f"student file {path} does not exist")


# -- checkpoints ---------------------------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint as a dict, read with `weights_only=True` (tensors and plain data
    only); a file holding anything else is refused with UnsafeArtifactError, never run."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    if not looks_pickled(path):
        raise BadValueError(f"{path} is not a checkpoint torch can read (not a torch.save file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001  weights_only: reading cannot run code
        if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in str(err):
            raise UnsafeArtifactError(
                f"{path} holds pickled objects other than tensors and plain data "
                f"({_unpickler_detail(err)}), which could run code when loaded: refused; "
                f"{convert_hint(path)}"
            ) from None
        raise BadValueError(
            f"{path} is not a checkpoint torch can read: {_first_line(err)}"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise BadValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def trusted_checkpoint(path: str | Path) -> str:
    """`path` as a string once it reads with `weights_only=True` (for Lightning's `ckpt_path`)."""
    read_checkpoint(path)
    return str(path)


def load_checkpoint_module(checkpoint: str | Path) -> DistillModule:
    """The DistillModule of a checkpoint written by `distill fit`, on CPU, as saved (taps on),
    read with `weights_only=True`."""
    ckpt = read_checkpoint(checkpoint)
    if "hyper_parameters" not in ckpt or "cfg" not in ckpt["hyper_parameters"]:
        raise BadValueError(f"{checkpoint} is not a checkpoint of `distill fit` (no recipe in it)")
    return DistillModule.load_from_checkpoint(
        str(checkpoint), map_location="cpu", weights_only=True
    )


def load_module(checkpoint: str | Path) -> Any:
    """The DistillModule of a checkpoint, on CPU, taps detached (student alone)."""
    module = load_checkpoint_module(checkpoint)
    module.detach_taps()
    return module.eval()


def resolve(path: str | Path) -> tuple[Path, Path]:
    """(checkpoint, run directory) for a run directory or a .ckpt written by `distill fit`."""
    path = Path(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            raise MissingFileError(
                f"{path} holds no checkpoints/best.ckpt: give a run directory written by "
                "`distill fit` or a .ckpt file"
            )
        return ckpt, path
    if not path.is_file() or path.suffix != ".ckpt":
        raise MissingFileError(f"{path} is neither a run directory nor a .ckpt file")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, run_dir


def frames_of(module: Any) -> int:
    """Feature frames of one clip of the recipe's length."""
    cfg = module.cfg
    return module.frontend.num_frames(int(round(cfg.data.clip_seconds * cfg.data.sample_rate)))


def _unpickler_detail(err: Exception) -> str:
    """The unpickler's reason (e.g. 'Unsupported global: GLOBAL os.system ...') on one line."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. Please|\n\n|$)", str(err), re.S)
    return " ".join((found.group(1) if found else "not tensors and plain data").split())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# -- hub-style folders ---------------------------------------------------------------------------


def save_run_pretrained(run_dir: str | Path, out_dir: str | Path) -> Path:
    """The student of a `distill fit` run as a hub-style folder (model.safetensors, config.json
    and a model card README.md naming its classes, frontend, recipe, KD arm, teacher and test
    scores), loadable with `students.from_pretrained(out_dir)`. Returns `out_dir`."""
    from distill.pipeline.results import FitResult
    from distill.students.hub import INFO_KEYS, model_card, save_pretrained

    run_dir = Path(run_dir)
    for name in ("config.yaml", "results.json"):
        if not (run_dir / name).is_file():
            raise MissingFileError(
                f"{run_dir} holds no {name}: give a run directory of `distill fit`"
            )
    model, info = load_student(run_dir / STUDENT_FILE)
    info = {k: v for k, v in info.items() if k in INFO_KEYS}
    cfg = OmegaConf.load(run_dir / "config.yaml")
    results = FitResult.read(run_dir / "results.json")
    teacher = cfg.teacher.kind + (f" ({cfg.teacher.path})" if cfg.teacher.path else "")
    facts = {
        "recipe": cfg.name + (f": {cfg.description}" if cfg.get("description") else ""),
        "data": cfg.data.name,
        "KD arm": kd_arm(cfg.losses),
        "teacher": teacher,
        "seed": results.seed,
    }
    card = model_card(info, facts, results.test)
    return save_pretrained(model, out_dir, card=card, **info)


def kd_arm(losses: Any) -> str:
    """The recipe's distillation terms as an arm name of `distill compare` (e.g.
    `logit@0.5+temporal@0.25`; `none` without KD); a term no token describes keeps its name."""
    from distill.core.losses.registry import specs

    parts = []
    for spec in specs():
        term = losses.get(spec.name)
        if not spec.distills or term is None or float(term.weight) <= 0:
            continue
        fitting = [
            (len(sets), token)
            for token, sets in spec.arm_tokens.items()
            if all(term.get(k) == v for k, v in sets.items())
        ]
        token = max(fitting)[1] if fitting else spec.name
        parts.append(f"{token}@{float(term.weight):g}")
    for name, term in (losses.get("custom") or {}).items():
        if float(term.weight) > 0:
            parts.append(f"{name}@{float(term.weight):g}")
    return "+".join(parts) or "none"
