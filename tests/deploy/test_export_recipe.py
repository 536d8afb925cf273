"""`distill export` takes its format, int8 and opset from the run's recipe (`export.*`), the
command-line flags override them, and every ONNX export defaults to the one opset."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from distill.teachers import export as teacher_export

from distill.cli import main
from distill.config.schema import ExportConfig
from distill.deploy import litert, onnx_io, onnx_stream
from distill.deploy.export import recipe_export_settings

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread


def run_with_export(tiny_run: dict, tmp_path: Path, **export: object) -> Path:
    """A copy of the tiny run whose recipe's `export` section is `export` (a run directory
    holding only its checkpoint)."""
    source = tiny_run["run_dir"] / "checkpoints" / "best.ckpt"
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["cfg"]["export"] = dict(export)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints" / "best.ckpt")
    return run


def exported(run: Path, *flags: str) -> dict:
    """`distill export RUN --limit-batches 1 FLAGS`: file name -> opset of each ONNX written."""
    assert main(["export", str(run), "--limit-batches", "1", *flags]) == 0
    files = sorted((run / "export").glob("*.onnx"))
    report = json.loads((run / "export" / "export.json").read_text())
    opsets = {p.name: onnx.load(str(p)).opset_import[0].version for p in files}
    assert set(opsets.values()) == {report["opset"]}
    return opsets


def test_recipe_defaults_are_the_schemas(tiny_run: dict, tmp_path: Path) -> None:
    run = run_with_export(tiny_run, tmp_path)  # an older recipe without the section
    assert recipe_export_settings(run) == {"format": "onnx", "int8": False, "opset": 18}
    assert exported(run) == {"student_float.onnx": ExportConfig.opset}


def test_recipe_opset_is_used_and_the_flag_overrides_it(
    tiny_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = run_with_export(tiny_run, tmp_path, opset=17)
    assert exported(run) == {"student_float.onnx": 17}
    assert exported(run, "--opset", "16") == {"student_float.onnx": 16}
    assert main(["export", str(run), "--limit-batches", "1", "--opset", "99"]) != 0
    assert "ONNX opset 99 is not one torch.onnx can export to" in capsys.readouterr().err


def test_recipe_int8_is_used_and_the_flag_overrides_it(tiny_run: dict, tmp_path: Path) -> None:
    run = run_with_export(tiny_run, tmp_path, int8=True)
    assert set(exported(run, "--calib-batches", "1")) == {
        "student_float.onnx",
        "student_int8_ptq.onnx",
    }
    for path in (run / "export").glob("*.onnx"):
        path.unlink()
    assert set(exported(run, "--no-int8")) == {"student_float.onnx"}


def test_recipe_format_is_used_and_the_flag_overrides_it(
    tiny_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = run_with_export(tiny_run, tmp_path, format="tflite")
    if litert.missing_modules():  # the recipe chose LiteRT: its missing extra is named
        assert main(["export", str(run), "--limit-batches", "1"]) != 0
        assert "`litert` extra" in capsys.readouterr().err
    else:
        assert main(["export", str(run), "--limit-batches", "1"]) == 0
        assert (run / "export" / "student_float.tflite").is_file()
    assert main(["export", str(run), "--opset", "17"]) == 2  # an opset is for ONNX only
    assert exported(run, "--format", "onnx") == {"student_float.onnx": 18}


def test_one_default_opset_everywhere(tmp_path: Path) -> None:
    from distill import students, teachers
    from tests.deploy.stream_helpers import detector

    def opset(path: Path) -> int:
        model = onnx.load(str(path))
        return next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))

    student = students.create("tc_resnet8", num_classes=3, n_features=40)
    teacher = teachers.spec("inhouse").cls.build(["a", "b", "c"], preset="tiny").eval()
    det = detector("tc_resnet8", causal=True)
    written = [
        onnx_io.export_float(student, tmp_path / "f.onnx", 40, 51),
        teacher_export.export_teacher(teacher, tmp_path / "t.onnx", 16000)[0],
        onnx_stream.export_waveform(det, tmp_path / "w.onnx"),
        onnx_stream.export_stateful(det, tmp_path / "s.onnx", onnx_stream.step_seconds_for(det)),
    ]
    assert [opset(p) for p in written] == [teacher_export.DEFAULT_OPSET] * 4
    assert ExportConfig.opset == teacher_export.DEFAULT_OPSET
