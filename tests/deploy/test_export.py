"""ONNX export of the bare student: no aux parts, parity with PyTorch, refusal when broken,
and the bench table's structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from distill import students
from distill.commands.qat_export_bench import register  # noqa: F401  the command module imports
from distill.deploy.bench import format_table
from distill.deploy.export import ParityError, export_run
from distill.deploy.int8 import quantize_onnx
from distill.deploy.onnx_io import export_float, run_onnx, run_torch
from distill.pipeline.artifacts import STUDENT_FILE, load_student

# int8 vs float argmax agreement required on fixed random inputs (seed 0, 64 clips): QDQ int8 of
# a random TC-ResNet8 agrees on 99.4-100% of them in onnxruntime; 90% leaves room for rounding.
INT8_MIN_AGREEMENT = 0.90


def _random_onnx(name: str, tmp_path: Path, frames: int) -> Path:
    """Float ONNX of a randomly initialised (seed 0) student, 40 features in."""
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    return export_float(model, tmp_path / "f.onnx", 40, frames, 18)


def _quantized_producers(path: Path) -> set[str]:
    """Operator types whose outputs the QDQ model quantizes."""
    graph = onnx.load(str(path)).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    return {producers[n.input[0]] for n in graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] in producers}  # fmt: skip


def _graph_names(path: Path) -> tuple[list[str], list[str]]:
    graph = onnx.load(str(path)).graph
    return sorted(i.name for i in graph.initializer), [n.op_type for n in graph.node]


@pytest.fixture(scope="module")
def exported(tiny_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("export")
    report = export_run(tiny_run["run_dir"], int8=True, out_dir=out)
    plain, _ = load_student(tiny_run["run_dir"] / STUDENT_FILE)  # plain student, same weights
    plain_path = export_float(plain, out / "plain.onnx", 40, 101, 18)
    return {"report": report, "plain": plain_path, "out": out}


def test_export_holds_only_the_student(exported: dict) -> None:
    files = exported["report"]["files"]
    plain_inits, plain_ops = _graph_names(exported["plain"])
    inits, ops = _graph_names(Path(files["float"]["path"]))
    assert inits == plain_inits and ops == plain_ops
    int8_inits, int8_ops = _graph_names(Path(files["int8_ptq"]["path"]))
    for name in int8_inits + [n.name for n in onnx.load(files["int8_ptq"]["path"]).graph.node]:
        assert "aux" not in name and "attention" not in name and "frontend" not in name
    assert int8_ops.count("Conv") == plain_ops.count("Conv")
    assert int8_ops.count("Gemm") + int8_ops.count("MatMul") == plain_ops.count(
        "Gemm"
    ) + plain_ops.count("MatMul")
    assert "DequantizeLinear" in int8_ops


def test_float_export_agrees_and_reports_int8_change(exported: dict) -> None:
    files = exported["report"]["files"]
    assert files["float"]["agreement_with_torch"] >= 0.995
    assert files["float"]["max_abs_logit_diff"] < 1e-4
    assert "accuracy_change_vs_float" in files["int8_ptq"]


def test_onnxruntime_matches_torch_float_and_int8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = students.create("tc_resnet8", num_classes=12, n_features=40).eval()
    path = export_float(model, tmp_path / "f.onnx", 40, 101, 18)
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((16, 40, 101)).astype(np.float32) for _ in range(4)]
    expected = run_torch(model, feats)
    got = run_onnx(path, feats)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    quantize_onnx(path, tmp_path / "q.onnx", feats[:2])
    int8 = run_onnx(tmp_path / "q.onnx", feats)
    assert (int8.argmax(1) == expected.argmax(1)).mean() >= INT8_MIN_AGREEMENT


def test_quantization_options_change_the_graph(tmp_path: Path) -> None:
    path = _random_onnx("bc_resnet1", tmp_path, frames=51)
    feats = [np.random.default_rng(0).standard_normal((4, 40, 51)).astype(np.float32)]

    def ops(out: Path) -> set[str]:
        return {node.op_type for node in onnx.load(str(out)).graph.node}

    assert quantize_onnx(path, tmp_path / "qdq.onnx", feats) != []  # 1-channel, depthwise
    assert "QuantizeLinear" in ops(tmp_path / "qdq.onnx")
    assert quantize_onnx(path, tmp_path / "all.onnx", feats, keep_slow_convs_float=False) == []
    quantize_onnx(path, tmp_path / "qop.onnx", feats, quant_format="qoperator")
    assert "QLinearConv" in ops(tmp_path / "qop.onnx")
    with pytest.raises(ValueError, match="weight_type one of"):
        quantize_onnx(path, tmp_path / "bad.onnx", feats, weight_type="int4")
    with pytest.raises(ValueError, match="calibration_method must be one of"):
        quantize_onnx(path, tmp_path / "bad.onnx", feats, calibration_method="kl")
    quantize_onnx(path, tmp_path / "every.onnx", feats, op_types=None)
    quantize_onnx(path, tmp_path / "conv.onnx", feats, op_types=["Conv", "Gemm", "MatMul"])
    assert "BatchNormalization" in _quantized_producers(tmp_path / "every.onnx")  # sub-spectral
    assert "BatchNormalization" not in _quantized_producers(tmp_path / "qdq.onnx")  # conv inputs

    def n_quantize(out: Path) -> int:
        return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)

    # "auto": some convs stay float here, so only Conv/Gemm/MatMul are quantized
    assert n_quantize(tmp_path / "qdq.onnx") == n_quantize(tmp_path / "conv.onnx")
    assert n_quantize(tmp_path / "qdq.onnx") < n_quantize(tmp_path / "every.onnx")
    with pytest.raises(ValueError, match=r"\['conv'\] are not ONNX operators"):
        quantize_onnx(path, tmp_path / "bad.onnx", feats, op_types=["conv"])
    with pytest.raises(ValueError, match="none occurs in the model"):
        quantize_onnx(path, tmp_path / "bad.onnx", feats, op_types=["LSTM"])


def test_export_refuses_broken_weights(tiny_run: dict, tmp_path: Path, monkeypatch) -> None:
    import distill.deploy.export as export_mod

    real = export_mod.export_float

    def corrupt(student, path, *args):
        real(student, path, *args)
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.ndim == 4:
                noise = np.random.default_rng(0).standard_normal(arr.shape).astype(arr.dtype)
                init.CopyFrom(numpy_helper.from_array(noise, init.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(export_mod, "export_float", corrupt)
    with pytest.raises(ParityError, match="below the required 99.50%"):
        export_run(tiny_run["run_dir"], out_dir=tmp_path)


def test_bench_table_has_ratio_columns() -> None:
    rows = [
        {
            "model": m,
            "runtime": "onnxruntime",
            "params": 10,
            "macs": 100,
            "bytes": 2048,
            "b1_ms": 1.0,
            "b32_ms": 2.0,
            "ratio_b1": 1.0,
            "ratio_b32": 2.0,
        }
        for m in ("teacher", "student float", "student int8_ptq")
    ]
    table = format_table(rows).splitlines()
    assert table[0].split()[-4:] == ["ratio", "b1", "ratio", "b32"]
    assert len(table) == 5 and table[2].startswith("student float")


def test_op_profile_names_the_kernels_of_float_and_int8(tmp_path: Path) -> None:
    from distill.cost import onnx_op_profile

    path = _random_onnx("tc_resnet8", tmp_path, frames=51)
    feats = [np.random.default_rng(0).standard_normal((8, 40, 51)).astype(np.float32)]
    quantize_onnx(path, tmp_path / "q.onnx", feats)
    f = onnx_op_profile(path, (1, 40, 51), batch=4, runs=3)
    q = onnx_op_profile(tmp_path / "q.onnx", (1, 40, 51), batch=4, runs=3)
    assert "Conv" in f and "QLinearConv" not in f
    assert "QLinearConv" in q  # onnxruntime fuses the QDQ convs into integer kernels
    assert all(ms >= 0 for ms in (*f.values(), *q.values())) and sum(f.values()) > 0
    with pytest.raises(ValueError, match="batch >= 1"):
        onnx_op_profile(path, (1, 40, 51), batch=0)


def test_percentile_calibration_clips_outliers(tmp_path: Path) -> None:
    path = _random_onnx("tc_resnet8", tmp_path, frames=51)
    feats = np.random.default_rng(0).standard_normal((64, 40, 51)).astype(np.float32)
    feats[0, 0, 0] = 500.0  # one outlier in 130 K values sets the min-max range

    def first_scale(method: str) -> float:
        out = tmp_path / f"{method}.onnx"
        quantize_onnx(path, out, [feats], calibration_method=method)
        graph = onnx.load(str(out)).graph
        node = next(n for n in graph.node if n.op_type == "QuantizeLinear")  # the first one
        init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        return float(init[node.input[1]])

    assert first_scale("percentile") < 0.5 * first_scale("minmax")


def test_sqnr_covers_every_quantized_activation_and_matches_logits(tmp_path: Path) -> None:
    from distill.deploy.int8_error import activation_sqnr

    path = _random_onnx("bc_resnet1", tmp_path, frames=51)
    feats = [np.random.default_rng(0).standard_normal((6, 40, 51)).astype(np.float32)]
    quantize_onnx(path, tmp_path / "q.onnx", feats)
    rows = activation_sqnr(path, tmp_path / "q.onnx", feats, chunk=4)  # chunks of 4 and 2
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    weights = {i.name for i in graph.initializer}
    quantized = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"} - weights
    renamed_output = {"logits_QuantizeLinear_Input"}  # the logits before their Q/DQ: last row
    assert {r["tensor"] for r in rows[:-1]} == quantized - renamed_output
    assert rows[-1]["op"] == "logits" and all(np.isfinite(r["sqnr_db"]) for r in rows)
    f, q = run_onnx(path, feats).astype(np.float64), run_onnx(tmp_path / "q.onnx", feats)
    by_hand = 10 * np.log10(np.square(f).sum() / np.square(f - q).sum())
    assert abs(rows[-1]["sqnr_db"] - by_hand) < 0.5  # unfused Q/DQ vs fused integer kernels


def test_sqnr_shows_the_range_an_outlier_costs(tmp_path: Path) -> None:
    from distill.deploy.int8_error import activation_sqnr

    path = _random_onnx("tc_resnet8", tmp_path, frames=51)
    clean = np.random.default_rng(0).standard_normal((64, 40, 51)).astype(np.float32)
    spiked = clean.copy()
    spiked[0, 0, 0] = 500.0  # one value in 130 K: percentile (99.999 %) clips it, minmax not
    sqnr = {}
    for method in ("minmax", "percentile"):
        quantize_onnx(path, tmp_path / f"{method}.onnx", [spiked], calibration_method=method)
        rows = activation_sqnr(path, tmp_path / f"{method}.onnx", [clean])
        sqnr[method] = rows[0]["sqnr_db"]  # the first quantized tensor: the unsqueezed input
        # (every op type is quantized: no TC-ResNet conv stays float, so "auto" means all)
    assert rows[0]["op"] == "Unsqueeze"
    assert sqnr["percentile"] > sqnr["minmax"] + 10  # a 500/255 step rounds most inputs to 0
    with pytest.raises(ValueError, match="at least one batch"):
        activation_sqnr(path, tmp_path / "minmax.onnx", [])


def test_export_records_calibration_and_sqnr(tiny_run: dict, tmp_path: Path) -> None:
    from distill.deploy.export import format_report

    report = export_run(
        tiny_run["run_dir"],
        int8=True,
        out_dir=tmp_path,
        calib_batches=1,
        calibration_method="entropy",
        sqnr_batches=1,
        int8_ops=["Conv", "Gemm"],
    )
    ptq = report["files"]["int8_ptq"]
    assert ptq["calibration_method"] == "entropy" and ptq["calibration_clips"] > 0
    assert ptq["quantized_op_types"] == ["Conv", "Gemm"]
    assert ptq["activation_sqnr_db"][-1]["op"] == "logits"
    assert "logits SQNR" in format_report(report)
    with pytest.raises(ValueError, match="calib_batches must be >= 1"):
        export_run(tiny_run["run_dir"], int8=True, out_dir=tmp_path, calib_batches=0)


def test_export_calibrates_off_the_checked_split_and_counts_flips(
    tiny_run: dict, tmp_path: Path
) -> None:
    from distill.deploy.export import format_report

    report = export_run(
        tiny_run["run_dir"],
        int8=True,
        split="test",
        out_dir=tmp_path,
        calib_batches=1,
        calib_split="train",
        data_overrides=["data.batch_size=3"],
    )
    assert report["split"] == "test" and report["calibration_split"] == "train"
    ptq = report["files"]["int8_ptq"]
    assert ptq["calibration_clips"] == 3  # one training batch, at the overridden batch size
    change_in_clips = round(ptq["accuracy_change_vs_float"] * report["clips"])
    assert ptq["clips_fixed"] - ptq["clips_broken"] == change_in_clips
    assert f"[+{ptq['clips_fixed']} / -{ptq['clips_broken']} clips vs its float: 95 % CI " in (
        format_report(report)
    )
    with pytest.raises(ValueError, match=r"data.\* overrides only.*'student.name=gru'"):
        export_run(tiny_run["run_dir"], out_dir=tmp_path, data_overrides=["student.name=gru"])
    with pytest.raises(ValueError, match="calib_split must be train or val"):
        export_run(tiny_run["run_dir"], int8=True, out_dir=tmp_path, calib_split="test")
