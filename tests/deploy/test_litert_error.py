"""Per-tensor SQNR of a LiteRT int8 `.tflite` against its float file: the input row equals a
hand quantization, the logits row the XNNPACK logits' SQNR, bad calibration shows up, files that
do not belong together are refused, and `distill export --format tflite --sqnr-batches` reports
it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from distill import students
from distill.deploy import litert, litert_export
from distill.deploy.int8_error import sqnr_db
from distill.errors import BadValueError
from tests.helpers.markers import needs_litert


def _clips(scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(scale * rng.standard_normal((8, 40, 51))).astype(np.float32)]


def _files(tmp_path: Path, name: str = "tc_resnet8") -> Path:
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    return litert.convert_float(model, tmp_path / f"{name}.tflite", 40, 51)


def _input_scale(int8_path: Path) -> tuple[float, int]:
    it = litert.interpreter(int8_path)
    details = {d["index"]: d for d in it.get_tensor_details()}
    first = it._get_ops_details()[0]
    assert first["op_name"] == "QUANTIZE"
    scale, zero = details[int(first["outputs"][0])]["quantization"]
    return float(scale), int(zero)


@needs_litert
def test_sqnr_rows_match_hand_computations(tmp_path: Path) -> None:
    from distill.deploy.litert_error import tflite_activation_sqnr

    float_path = _files(tmp_path)
    clips = _clips()
    int8_path = litert.quantize_int8(float_path, tmp_path / "q.tflite", clips)
    rows = tflite_activation_sqnr(float_path, int8_path, clips)
    assert rows[0]["op"] == "input" and rows[-1]["op"] == "logits"
    assert {r["op"] for r in rows[1:-1]} >= {"CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"}
    assert all(np.isfinite(r["sqnr_db"]) for r in rows)

    # the input row: the clips rounded on the int8 file's input grid, by hand
    scale, zero = _input_scale(int8_path)
    x = clips[0].astype(np.float64)
    q = (np.clip(np.round(x / scale) + zero, -128, 127) - zero) * scale
    by_hand = sqnr_db(float(np.square(x).sum()), float(np.square(x - q).sum()))
    assert rows[0]["sqnr_db"] == pytest.approx(by_hand, abs=1e-6)

    # the logits row: what the XNNPACK-delegated files give, to XNNPACK's last-bit rounding
    ref, got = litert.run_tflite(float_path, clips), litert.run_tflite(int8_path, clips)
    direct = sqnr_db(float(np.square(ref).sum()), float(np.square(ref - got).sum()))
    assert rows[-1]["sqnr_db"] == pytest.approx(direct, abs=1.0)


@needs_litert
def test_saturating_calibration_shows_in_the_report(tmp_path: Path) -> None:
    from distill.deploy.litert_error import tflite_activation_sqnr

    float_path = _files(tmp_path)
    clips = _clips()
    good = litert.quantize_int8(float_path, tmp_path / "good.tflite", clips)
    # ranges from clips 20x quieter than the ones measured: most values saturate
    bad = litert.quantize_int8(float_path, tmp_path / "bad.tflite", _clips(0.05))
    good_rows = tflite_activation_sqnr(float_path, good, clips)
    bad_rows = tflite_activation_sqnr(float_path, bad, clips)
    assert good_rows[0]["sqnr_db"] > 30 > 10 > bad_rows[0]["sqnr_db"]
    assert good_rows[-1]["sqnr_db"] > bad_rows[-1]["sqnr_db"] + 10


@needs_litert
def test_files_that_do_not_belong_together_are_refused(tmp_path: Path) -> None:
    from distill.deploy.litert_error import tflite_activation_sqnr

    tc = _files(tmp_path, "tc_resnet8")
    ds = _files(tmp_path, "ds_cnn_s")
    ds_int8 = litert.quantize_int8(ds, tmp_path / "ds_q.tflite", _clips())
    with pytest.raises(BadValueError, match="does not match .*tc_resnet8.tflite op by op"):
        tflite_activation_sqnr(tc, ds_int8, _clips())
    with pytest.raises(BadValueError, match="at least one clip"):
        tflite_activation_sqnr(ds, ds_int8, [])


@needs_litert
def test_export_reports_litert_sqnr(
    tiny_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from distill.cli import main

    report = litert_export.export_tflite_run(
        tiny_run["run_dir"], int8=True, limit_batches=1, sqnr_batches=1, out_dir=tmp_path
    )
    rows = report["files"]["int8_ptq"]["activation_sqnr_db"]
    assert rows[0]["op"] == "input" and rows[-1]["op"] == "logits"
    assert "logits SQNR" in litert_export.format_tflite_report(report)
    saved = json.loads((tmp_path / "export_tflite.json").read_text())
    assert saved["files"]["int8_ptq"]["activation_sqnr_db"][-1]["op"] == "logits"
    with pytest.raises(BadValueError, match="sqnr_batches must be >= 0"):
        litert_export.export_tflite_run(tiny_run["run_dir"], int8=True, sqnr_batches=-1)
    code = main(["export", str(tiny_run["run_dir"]), "--format", "tflite", "--sqnr-batches", "1"])
    assert code != 0 and "--sqnr-batches reports int8 against float: add --int8" in (
        capsys.readouterr().err
    )
