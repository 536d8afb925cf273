"""No code from artifacts: crafted checkpoints and student files are refused, never unpickled,
by every command and Python loader that opens one; students are safetensors + JSON config; old
pickled artifacts convert with `distill convert OLD --trust`."""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from distill import students
from distill.cli import main
from distill.config import RecipeConfig
from distill.core.module import DistillModule
from distill.errors import DistillError, MissingFileError
from distill.pipeline import artifacts
from distill.pipeline.artifacts import (
    QAT_DIR,
    QAT_STUDENT,
    STUDENT_FILE,
    UnsafeArtifactError,
    load_module,
    load_student,
    read_checkpoint,
    save_student,
)

CLASSES = [f"c{i}" for i in range(12)]


class CodeRunner:
    """Unpickling this calls `open(marker, "w")`: the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def tiny_cfg(tmp: Path, data_root: Path) -> DictConfig:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "safety"
    cfg.run_dir = str(tmp / "runs")
    cfg.data.root = str(data_root)
    cfg.data.clip_seconds = 1.0
    cfg.student.name = "tc_resnet8"
    cfg.teacher.kind = "none"
    cfg.trainer.progress_bar = False
    cfg.logger.wandb = False
    return cfg


def tiny_module(cfg: DictConfig) -> DistillModule:
    torch.manual_seed(0)
    return DistillModule(cfg, len(CLASSES), "single_label", CLASSES, cfg.data.clip_seconds)


def genuine_run(tmp: Path, data_root: Path) -> Path:
    """A run folder with a checkpoint as `distill fit` writes it (weights + recipe) and the
    student file, without training."""
    cfg = tiny_cfg(tmp, data_root)
    module = tiny_module(cfg)
    run = tmp / "genuine"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    torch.save(ckpt, run / "checkpoints" / "best.ckpt")
    save_student(module, run / STUDENT_FILE)
    return run


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped pickle that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": CodeRunner(marker)}, path)
    return path


def crafted_student(path: Path, marker: Path) -> Path:
    """A student file in the old pickled layout that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"name": "tc_resnet8", "state_dict": {}, "kwargs": CodeRunner(marker)}, path)
    return path


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "CODE_RAN"


@pytest.fixture()
def genuine(tmp_path: Path, tiny_kws_bank: Path) -> Path:
    return genuine_run(tmp_path, tiny_kws_bank)


@pytest.fixture()
def crafted_run(tmp_path: Path, marker: Path) -> Path:
    run = tmp_path / "crafted"
    crafted_checkpoint(run / "checkpoints" / "best.ckpt", marker)
    return run


def refused(argv: list[str], marker: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process; assert a non-zero exit, one error line and no code run."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0, err
    assert not marker.exists(), "the crafted artifact ran code"
    assert err.startswith("distill: error:") and len(err.splitlines()) == 1, err
    return err


# -- the crafted files are potent: loading them the old way runs code ----------------------------


@pytest.mark.parametrize("craft", [crafted_checkpoint, crafted_student])
def test_the_crafted_files_run_code_when_fully_unpickled(
    tmp_path: Path, marker: Path, craft: Callable
) -> None:
    path = craft(tmp_path / "f.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


# -- every command that opens an artifact refuses a crafted one ----------------------------------


@pytest.mark.parametrize("extra", [[], ["--evidence"]], ids=["eval", "eval-evidence"])
def test_eval_refuses_a_crafted_checkpoint(
    crafted_run: Path, marker: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = crafted_run / "checkpoints" / "best.ckpt"
    err = refused(["eval", str(ckpt), *extra], marker, capsys)
    assert str(ckpt) in err and "io.open" in err and f"distill convert {ckpt} --trust" in err


@pytest.mark.parametrize("command", ["export", "qat", "bench"])
def test_deployment_commands_refuse_a_crafted_checkpoint(
    crafted_run: Path, marker: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused([command, str(crafted_run)], marker, capsys)
    assert str(crafted_run / "checkpoints" / "best.ckpt") in err and "refused" in err


@pytest.mark.parametrize("name", [QAT_STUDENT, "qat_student.pt"], ids=["new-name", "old-name"])
@pytest.mark.parametrize("command", ["export", "bench"])
def test_export_and_bench_refuse_a_crafted_qat_student(
    genuine: Path, marker: Path, name: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    crafted_student(genuine / QAT_DIR / name, marker)
    err = refused([command, str(genuine), "--limit-batches", "1"], marker, capsys)
    assert str(genuine / QAT_DIR / name) in err and "--trust" in err
    assert not (genuine / "export").exists()  # refused before any work


def test_fit_resume_refuses_a_crafted_last_checkpoint(
    tmp_path: Path, tiny_kws_bank: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(OmegaConf.to_yaml(tiny_cfg(tmp_path, tiny_kws_bank)))
    run = tmp_path / "resumed"
    crafted_checkpoint(run / "checkpoints" / "last.ckpt", marker)
    argv = ["fit", str(recipe), "--run-dir", str(run), "--resume", "data.num_workers=0"]
    err = refused(argv, marker, capsys)
    assert str(run / "checkpoints" / "last.ckpt") in err


def grid_with_student(out: Path, student_name: str, marker: Path) -> Path:
    """A finished grid cell (results.json) whose saved student is crafted."""
    run = out / "tc_resnet8" / "none" / "seed0"
    run.mkdir(parents=True)
    results = {
        "monitor": "val/acc", "test": {"test/acc": 0.5}, "best_val": 0.5, "params": 1,
        "macs": 1, "epochs": 1, "wall_seconds": 1.0, "run_dir": str(run),
    }  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    return crafted_student(run / student_name, marker)


@pytest.mark.parametrize("name", [STUDENT_FILE, "student.pt"], ids=["new-name", "old-name"])
def test_compare_collect_only_refuses_a_crafted_student(
    tmp_path: Path, tiny_kws_bank: Path, marker: Path, name: str, capsys: pytest.CaptureFixture
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(OmegaConf.to_yaml(tiny_cfg(tmp_path, tiny_kws_bank)))
    out = tmp_path / "grid"
    student = grid_with_student(out, name, marker)
    argv = ["compare", str(recipe), "--students", "tc_resnet8", "--losses", "none"]
    err = refused([*argv, "--seeds", "1", "--out", str(out), "--collect-only"], marker, capsys)
    assert str(student) in err and f"distill convert {student} --trust" in err
    assert not (out / "results.csv").exists()


# -- the Python loaders --------------------------------------------------------------------------


def _loaders() -> dict[str, Callable[[Path], object]]:
    from distill.analysis.evidence import checkpoint_evidence
    from distill.deploy.bench import bench_run
    from distill.deploy.export import export_run
    from distill.deploy.qat import run_qat
    from distill.pipeline.evaluate import evaluate_checkpoint

    return {
        "read_checkpoint": read_checkpoint,
        "load_checkpoint_module": artifacts.load_checkpoint_module,
        "load_module": load_module,
        "evaluate_checkpoint": evaluate_checkpoint,
        "checkpoint_evidence": checkpoint_evidence,
        "run_qat": run_qat,
        "export_run": export_run,
        "bench_run": bench_run,
    }


@pytest.mark.parametrize("loader", sorted(_loaders()))
def test_python_checkpoint_loaders_refuse_a_crafted_checkpoint(
    crafted_run: Path, marker: Path, loader: str
) -> None:
    ckpt = crafted_run / "checkpoints" / "best.ckpt"
    with pytest.raises(UnsafeArtifactError, match="distill convert .* --trust"):
        _loaders()[loader](ckpt)
    assert not marker.exists()


@pytest.mark.parametrize("name", [STUDENT_FILE, "student.pt"], ids=["new-name", "old-name"])
def test_python_student_loaders_refuse_a_crafted_student(
    tmp_path: Path, marker: Path, name: str
) -> None:
    from distill.experiments.compare import student_latency

    crafted_student(tmp_path / name, marker)
    for load in (load_student, artifacts.read_student_info, student_latency):
        with pytest.raises(UnsafeArtifactError, match="pickled student"):
            load(tmp_path / STUDENT_FILE)
    crafted_student(tmp_path / QAT_DIR / name.replace("student", "qat_student"), marker)
    with pytest.raises(UnsafeArtifactError):
        artifacts.load_qat_student(tmp_path)
    assert not marker.exists()


def test_unsafe_artifact_error_is_a_distill_error_and_an_unpickling_error() -> None:
    assert issubclass(UnsafeArtifactError, DistillError)
    assert issubclass(UnsafeArtifactError, pickle.UnpicklingError)


def test_a_file_that_is_no_checkpoint_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DistillError, match="junk.ckpt is not a checkpoint torch can read"):
        read_checkpoint(junk)
    with pytest.raises(MissingFileError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.ckpt")


# -- the safe formats ----------------------------------------------------------------------------


def test_genuine_artifacts_load_and_the_student_is_safetensors_with_json(genuine: Path) -> None:
    module = load_module(genuine / "checkpoints" / "best.ckpt")
    model, info = load_student(genuine / STUDENT_FILE)
    assert {k: info[k] for k in ("name", "num_classes", "n_features")} == {
        "name": "tc_resnet8", "num_classes": 12, "n_features": module.frontend.n_features,
    }  # fmt: skip
    assert info["class_names"] == CLASSES and info["clip_seconds"] == 1.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, module.student.state_dict()[key]), key
    raw = (genuine / STUDENT_FILE).read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])  # safetensors: a JSON header, then raw tensors
    assert json.loads(header["__metadata__"]["config"]) == info
    assert b"\x80\x02" not in raw[:16] and not raw.startswith(b"PK")


def test_a_safetensors_file_that_is_not_a_student_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DistillError, match="not a student saved by distill"):
        load_student(tmp_path / "other.safetensors")


# -- converting trusted old artifacts ------------------------------------------------------------


def old_student(path: Path) -> torch.nn.Module:
    """A student file as older versions wrote it (torch.save of a dict)."""
    torch.manual_seed(1)
    model = students.create("tc_resnet8", num_classes=12, n_features=40).eval()
    payload = {
        "name": "tc_resnet8", "num_classes": 12, "n_features": 40,
        "kwargs": OmegaConf.create({}), "class_names": CLASSES,
        "frontend": {"n_mels": 40}, "clip_seconds": 1.0, "state_dict": model.state_dict(),
    }  # fmt: skip
    torch.save(payload, path)
    return model


def test_convert_needs_trust_and_then_rewrites_an_old_student(
    tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crafted = crafted_student(tmp_path / "crafted" / "student.pt", marker)
    err = refused(["convert", str(crafted)], marker, capsys)
    assert "--trust" in err
    old = tmp_path / "student.pt"
    model = old_student(old)
    with pytest.raises(UnsafeArtifactError):
        load_student(old)
    assert main(["convert", str(old), "--trust"]) == 0
    new, info = load_student(tmp_path / STUDENT_FILE)
    x = torch.randn(2, 40, 101)
    assert torch.equal(new(x), model(x))
    assert info["kwargs"] == {} and info["class_names"] == CLASSES
    assert old.is_file()  # the old file is kept


def test_convert_rewrites_an_old_checkpoint_in_place(
    genuine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt_path = genuine / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["hyper_parameters"]["cfg"] = OmegaConf.create(ckpt["hyper_parameters"]["cfg"])
    ckpt["extra_path"] = genuine  # objects older versions may have pickled
    torch.save(ckpt, ckpt_path)
    with pytest.raises(UnsafeArtifactError):
        read_checkpoint(ckpt_path)
    assert main(["convert", str(genuine), "--trust"]) == 0
    printed = capsys.readouterr().out
    assert "best.ckpt.old" in printed and "student.safetensors" not in printed
    assert read_checkpoint(ckpt_path)["extra_path"] == str(genuine)
    load_module(ckpt_path)
    assert (ckpt_path.parent / "best.ckpt.old").is_file()
    assert main(["convert", str(ckpt_path), "--trust"]) == 0
    assert "already safe" in capsys.readouterr().out


def test_convert_refuses_objects_a_safe_checkpoint_cannot_hold(tmp_path: Path) -> None:
    from distill.commands.convert import plain_data

    with pytest.raises(DistillError, match=r"old.ckpt\['x'\] is a builtins.object"):
        plain_data({"x": object()}, "old.ckpt")
