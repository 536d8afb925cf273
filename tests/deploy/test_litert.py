"""LiteRT (.tflite) export: float and full-integer int8 students round-trip and agree with
PyTorch, the memory budget matches a hand count, `distill export --format tflite` and the bench
rows work on a tiny run, and bad input names what is missing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from distill import students
from distill.deploy import litert, litert_export, litert_io
from distill.deploy.memory import peak_live_bytes
from distill.errors import BadValueError, MissingExtraError, MissingFileError, UsageError
from tests.helpers.markers import needs_litert

# int8 vs float argmax agreement required on 48 random clips (seed 0): full-integer int8 of the
# random students agrees on 100% of them in the LiteRT interpreter; 90% leaves room for rounding.
INT8_MIN_AGREEMENT = 0.90


def _random_clips(n_batches: int = 3, frames: int = 51) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((16, 40, frames)).astype(np.float32) for _ in range(n_batches)]


@needs_litert
@pytest.mark.parametrize("name", ["tc_resnet8", "bc_resnet1", "ds_cnn_s"])
def test_float_and_int8_tflite_agree_with_torch(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    feats = _random_clips()
    ref = torch.cat([model(torch.from_numpy(f)) for f in feats]).detach().numpy()
    float_path = litert.convert_float(model, tmp_path / "f.tflite", 40, 51)
    logits = litert.run_tflite(float_path, feats)
    assert np.abs(logits - ref).max() < 1e-4
    assert (logits.argmax(1) == ref.argmax(1)).all()

    int8 = litert.quantize_int8(float_path, tmp_path / "q.tflite", feats[:1])
    int8_io = litert.quantize_int8(float_path, tmp_path / "qi.tflite", feats[:1], int8_io=True)
    assert litert.io_types(int8) == {"input": "float32", "output": "float32"}
    assert litert.io_types(int8_io) == {"input": "int8", "output": "int8"}
    q_logits, qi_logits = litert.run_tflite(int8, feats), litert.run_tflite(int8_io, feats)
    assert (q_logits.argmax(1) == ref.argmax(1)).mean() >= INT8_MIN_AGREEMENT
    # the same integer graph: int8 I/O only moves the input quantize / output dequantize out
    assert np.abs(q_logits - qi_logits).max() <= 1e-6 + np.abs(ref).max() / 64
    # BC-ResNet-1 has 27 KB of weights and many small tensors: its quantization parameters
    # outweigh what int8 weights save, so its int8 file is a little larger
    assert int8.stat().st_size < float_path.stat().st_size or name == "bc_resnet1"
    assert litert.tflite_latency(int8, batch=1, runs=3, warmup=1) > 0
    assert litert.tflite_latency(int8, batch=32, runs=3) is None  # the file's batch is fixed


@needs_litert
def test_bc_resnet_int8_graph_averages_frequency_by_depthwise_conv(tmp_path: Path) -> None:
    """The graph that is quantized takes the 5-row frequency means as depthwise convolutions
    (int8 MEAN is slow in XNNPACK); the float file keeps MEAN; both compute the student."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    torch.manual_seed(0)
    model = students.create("bc_resnet1", num_classes=12, n_features=40).eval()
    feats = _random_clips()
    ref = torch.cat([model(torch.from_numpy(f)) for f in feats]).detach().numpy()
    paths = {
        kind: litert.convert_float(model, tmp_path / f"{kind}.tflite", 40, 51, for_int8=kind == "q")
        for kind in ("f", "q")
    }

    def means(path: Path) -> int:
        m = fu.read_model(str(path))
        return sum(
            fu.opcode_to_name(m, op.opcodeIndex) == "MEAN" for op in m.subgraphs[0].operators
        )

    assert means(paths["f"]) == 13 and means(paths["q"]) == 5  # 8 blocks average 5 rows
    for path in paths.values():
        assert np.abs(litert.run_tflite(path, feats) - ref).max() < 1e-4
    int8 = litert.quantize_int8(paths["q"], tmp_path / "int8.tflite", feats[:1])
    agreement = (litert.run_tflite(int8, feats).argmax(1) == ref.argmax(1)).mean()
    assert agreement >= INT8_MIN_AGREEMENT


class _Tiny(nn.Module):
    """(1, 2, 4) -> flatten -> fc a -> [relu(fc b) + skip] -> fc c -> (1, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x.flatten(1))
        return self.c(torch.relu(self.b(y)) + y)


@needs_litert
def test_int8_ranges_cover_the_largest_calibration_clip(tmp_path: Path) -> None:
    """Twenty quiet clips, then one 8x louder: the activation ranges are the extremes over all
    clips, so the int8 model does not saturate on the loud one. Measured: logits within 0.3 % of
    the largest logit; ai-edge-quantizer's default (a moving average of per-clip extremes) gave
    the hidden layers ranges 7x too narrow and logits off by 4.5 of 5.0."""
    torch.manual_seed(0)
    model = _Tiny().eval()
    rng = np.random.default_rng(0)
    quiet = [rng.standard_normal((1, 2, 4)).astype(np.float32) for _ in range(20)]
    loud = 8 * rng.standard_normal((1, 2, 4)).astype(np.float32)
    float_path = litert.convert_module(model, (torch.zeros(1, 2, 4),))
    (tmp_path / "f.tflite").write_bytes(float_path)
    int8 = litert.quantize_int8(tmp_path / "f.tflite", tmp_path / "q.tflite", [*quiet, loud])
    ref = model(torch.from_numpy(loud)).detach().numpy()
    got = litert.run_tflite(int8, [loud])
    assert np.abs(got - ref).max() < 0.02 * np.abs(ref).max()  # a few int8 steps


def test_peak_live_bytes_hand_count() -> None:
    # t0 (in, 32 B) -> op0 -> t1 (64) -> op1 -> t2 (64); op2: t1 + t2 -> t3 (64); op3 -> t4 (16)
    # t5 is a weight (0 B). Alive: op0 {t0,t1} 96, op1 {t1,t2} 128, op2 {t1,t2,t3} 192,
    # op3 {t3,t4} 80.
    sizes = [32, 64, 64, 64, 16, 0]
    ops = [([0, 5], [1]), ([1, 5, -1], [2]), ([1, 2], [3]), ([3], [4])]
    assert peak_live_bytes(sizes, ops, [0], [4]) == (192, 2)
    # a graph output written early stays alive to the end; a variable tensor all the way
    assert peak_live_bytes([8, 8, 8], [([0], [1]), ([1], [2])], [0], [1, 2]) == (16, 0)
    assert peak_live_bytes([8, 8, 100], [([0], [1])], [0], [1], persistent=[2]) == (116, 0)
    with pytest.raises(BadValueError, match="no operators"):
        peak_live_bytes([4], [], [0], [0])


@needs_litert
def test_memory_budget_matches_hand_count(tmp_path: Path) -> None:
    from ai_edge_litert import schema_py_generated as schema

    from distill.deploy.memory import memory_budget, op_names

    torch.manual_seed(0)
    float_path = litert.convert_float(_Tiny().eval(), tmp_path / "f.tflite", 2, 4)
    calib = [np.random.default_rng(0).standard_normal((16, 2, 4)).astype(np.float32)]
    int8_path = litert.quantize_int8(float_path, tmp_path / "q.tflite", calib)

    def op_list(path: Path) -> list[str]:
        model = schema.Model.GetRootAs(path.read_bytes(), 0)
        graph, names = model.Subgraphs(0), op_names(model)
        return [names[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]

    fc = "FULLY_CONNECTED"
    # float: x (1,2,4) f32 32 B -> RESHAPE r (1,8) 32 -> FC a 64 -> ADD bias a' 64;
    # FC b(a) 64 -> ADD (b + a') s 64 -> FC c 16. Alive per op: 64, 96, 128,
    # {a, a', b} 192, {a', b, s} 192, {s, out} 80 -> 192 B at op 3.
    assert op_list(float_path) == ["RESHAPE", fc, "ADD", fc, "ADD", fc]
    budget = memory_budget(float_path)
    assert budget["peak_activation_bytes"] == 192 and budget["peak_at_op"] == "3:" + fc
    assert budget["flash_bytes"] == float_path.stat().st_size
    assert budget["weight_bytes"] >= 4 * (8 * 16 + 16 * 16 + 16 * 4)  # float32 weights
    # int8 (float I/O): QUANTIZE x 32 + 8, then every activation is int8: 16, 8 + 16,
    # {a, a'} 32, {a, a', b} 48, {a', b, s} 48, {s, out} 20, DEQUANTIZE 4 + 16 -> 48 B at op 4.
    assert op_list(int8_path) == ["QUANTIZE", "RESHAPE", fc, "ADD", fc, "ADD", fc, "DEQUANTIZE"]
    budget = memory_budget(int8_path)
    assert budget["peak_activation_bytes"] == 48 and budget["peak_at_op"] == "4:" + fc
    assert budget["weight_bytes"] < 8 * 16 + 16 * 16 + 16 * 4 + 4 * 36  # int8 weights, i32 bias


@needs_litert
def test_export_tflite_command_on_a_run(tiny_run: dict, capsys: pytest.CaptureFixture) -> None:
    from distill.cli import main

    run_dir = tiny_run["run_dir"]
    code = main(["export", str(run_dir), "--format", "tflite", "--int8", "--limit-batches", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "memory budget" in printed and "agreement with float LiteRT" in printed
    report = json.loads((run_dir / "export" / "export_tflite.json").read_text())
    files = report["files"]
    assert report["runtime"] == "LiteRT" and report["calibration_split"] == "val"
    assert files["float"]["agreement_with_torch"] >= 0.995
    assert files["float"]["max_abs_logit_diff"] < 1e-4
    assert "accuracy_change_vs_float" in files["int8_ptq"]
    assert files["int8_ptq"]["io"] == {"input": "float32", "output": "float32"}
    # quantized from its own float graph, kept beside it
    assert Path(files["int8_ptq"]["from"]).name == "student_int8_ptq_graph.tflite"
    assert Path(files["int8_ptq"]["from"]).is_file()
    for entry in files.values():
        assert Path(entry["path"]).suffix == ".tflite" and Path(entry["path"]).is_file()
        assert entry["memory"]["peak_activation_bytes"] > 0


@needs_litert
def test_export_tflite_int8_io_and_bench_rows(tiny_run: dict, tmp_path: Path) -> None:
    from distill.deploy.bench import bench_run, format_table

    report = litert_export.export_tflite_run(
        tiny_run["run_dir"], int8=True, int8_io=True, limit_batches=1, out_dir=tmp_path
    )
    assert report["files"]["int8_ptq"]["io"] == {"input": "int8", "output": "int8"}
    # LiteRT's default ranges: the 99.999th percentile (chosen on training-clip agreement)
    assert (report["calibration_method"], report["calibration_percentile"]) == (
        "percentile",
        99.999,
    )
    rows = bench_run(tiny_run["run_dir"], runs=3, warmup=1, limit_batches=1, litert=True)
    lite = {r["model"]: r for r in rows if r["runtime"] == "litert"}
    assert {"student float", "student int8_ptq"} <= set(lite)
    assert lite["student float"]["b32_ms"] is None and lite["student float"]["b1_ms"] > 0
    ratio = lite["student float"]["b1_ms"] / lite["student int8_ptq"]["b1_ms"]
    assert lite["student int8_ptq"]["ratio_b1"] == pytest.approx(ratio)
    table = format_table(rows)
    assert "litert" in table and "n/a" in table and "peak activations" in table


def test_missing_toolchain_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litert, "MODULES", (*litert.MODULES, "no_such_litert_module"))
    with pytest.raises(UsageError, match=r"`litert` extra.*no_such_litert_module"):
        litert.require_litert()


def test_opening_a_tflite_without_the_runtime_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    with pytest.raises(MissingExtraError, match=r"m.tflite needs the optional `litert` extra"):
        litert_io.interpreter(model)
    with pytest.raises(MissingFileError, match="gone.tflite does not exist"):
        litert_io.interpreter(tmp_path / "gone.tflite", debug=True)


@needs_litert
def test_bad_input_names_what_is_missing(tiny_run: dict, tmp_path: Path) -> None:
    run_dir = tiny_run["run_dir"]
    with pytest.raises(MissingFileError, match="nope"):
        litert_export.export_tflite_run(tmp_path / "nope")
    with pytest.raises(BadValueError, match="calib_batches must be >= 1"):
        litert_export.export_tflite_run(run_dir, int8=True, calib_batches=0)
    with pytest.raises(BadValueError, match="never test"):
        litert_export.export_tflite_run(run_dir, int8=True, calib_split="test")
    with pytest.raises(MissingFileError, match=r"gone/.*does not exist"):
        litert_export.export_tflite_run(
            run_dir, int8=True, data_overrides=[f"data.root={tmp_path}/gone"]
        )
    with pytest.raises(BadValueError, match="calibration needs at least one clip"):
        litert.quantize_int8(tmp_path / "missing.tflite", tmp_path / "q.tflite", [])
    with pytest.raises(MissingFileError, match="missing.tflite does not exist"):
        litert.run_tflite(tmp_path / "missing.tflite", _random_clips(1))


@needs_litert
def test_empty_split_is_named(tiny_run: dict, tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    shutil.copytree(tiny_run["cfg"].data.root, bank)
    (bank / "validation_list.txt").write_text("")  # no validation clips left
    overrides = [f"data.root={bank}", "data.cache_features=false"]
    with pytest.raises(BadValueError, match=r"validation split has no clips.*bank"):
        litert_export.export_tflite_run(tiny_run["run_dir"], int8=True, data_overrides=overrides)


@needs_litert
def test_float_tflite_disagreeing_with_torch_is_refused(
    tiny_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distill.deploy.export import ParityError

    real = litert.run_tflite
    # negated logits: argmax becomes argmin, so no clip agrees with PyTorch
    monkeypatch.setattr(litert_export, "run_tflite", lambda path, feats: -real(path, feats))
    with pytest.raises(ParityError, match="LiteRT argmax agrees with PyTorch on 0.00%"):
        litert_export.export_tflite_run(tiny_run["run_dir"], limit_batches=1, out_dir=tmp_path)
