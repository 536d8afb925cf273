"""LiteRT int8 activation ranges: the percentile clip on hand-made histograms, a rare loud clip
no longer setting the int8 step of a tiny model, the export report naming the method, and bad
calibration options refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from distill.deploy import litert, litert_calibration, litert_export
from distill.deploy.litert_calibration import check_calibration, clipped_range, mse_range
from distill.errors import BadValueError
from tests.helpers.markers import needs_litert


def test_clipped_range_by_hand() -> None:
    # 10 bins of width 0.2 over [-1, 1]; 100 values: 1 at the far left, 48 and 50 in the two
    # middle bins, 1 at the far right. cdf: .01 .01 .01 .01 .49 .99 .99 .99 .99 1.
    counts = np.array([1, 0, 0, 0, 48, 50, 0, 0, 0, 1])
    # 98th percentile: at most 2 % below the low end (bins 0-3 hold 1 %, bin 4 would make 49 %)
    # -> low = left edge of bin 4 = -0.2; the first bin reaching 98 % is bin 5 -> its right
    # edge 0.2
    assert clipped_range(counts, -1.0, 1.0, 98.0) == pytest.approx((-0.2, 0.2))
    # 99.5th: only 0.5 % may be cut on each side, less than the single outlier (1 %)
    assert clipped_range(counts, -1.0, 1.0, 99.5) == pytest.approx((-1.0, 1.0))
    # 100 and an empty histogram: the min-max range
    assert clipped_range(counts, -1.0, 1.0, 100.0) == (-1.0, 1.0)
    assert clipped_range(np.zeros(10), -1.0, 1.0, 98.0) == (-1.0, 1.0)
    # a positive tensor (after a ReLU) keeps 0 in its range; the outlier bin 9 is cut at 98 %
    positive = np.array([0, 60, 39, 0, 0, 0, 0, 0, 0, 1])  # bins of 0.3 over [1, 4]
    assert clipped_range(positive, 1.0, 4.0, 98.0) == pytest.approx((0.0, 1.9))


def test_mse_range_by_hand() -> None:
    # 100 bins of width 1 over [0, 100]: n values at 0.5 (bin 0) and k at 99.5 (bin 99).
    # Keeping [0, 100]: step 100/255, error step^2/12 = 0.0128 per value, whatever k.
    # Cutting at 1 (bin 0's right edge): step 1/255 (1.3e-6 per value), the k values each
    # cost (99.5 - 1)^2 = 9702: cheaper while k/(n+k) < about 1.3e-6.
    counts = np.zeros(100)
    counts[0], counts[99] = 1_000_000, 1  # share 1e-6: cutting costs 0.0097 < 0.0128
    assert mse_range(counts, 0.0, 100.0) == pytest.approx((0.0, 1.0))
    counts[99] = 10  # share 1e-5: cutting would cost 0.097 > 0.0128
    assert mse_range(counts, 0.0, 100.0) == pytest.approx((0.0, 100.0))
    # signed values: each end chosen on its own, 0 kept inside; an empty histogram keeps min-max
    signed = np.zeros(200)  # bins of 1 over [-100, 100]
    signed[0], signed[99], signed[100], signed[199] = 1, 500_000, 500_000, 10
    low, high = mse_range(signed, -100.0, 100.0)
    assert (low, high) == pytest.approx((-1.0, 100.0))
    assert mse_range(np.zeros(10), 1.0, 2.0) == (0.0, 2.0)


def test_bad_calibration_options_are_named() -> None:
    with pytest.raises(
        BadValueError, match=r"'entropy'.*expected one of \('minmax', 'percentile', 'mse'\)"
    ):
        check_calibration("entropy", 99.99)
    with pytest.raises(BadValueError, match=r"percentile must be in \(50, 100\], given 101"):
        check_calibration("percentile", 101.0)
    with pytest.raises(BadValueError, match="given 12.5"):
        check_calibration("percentile", 12.5)


def test_command_line_defaults_per_format() -> None:
    """No --calibration-method: min-max for ONNX; LiteRT resolves it to percentile (99.999)."""
    from distill.cli import build_parser
    from distill.commands.qat_export_bench import _onnx_options

    args = build_parser().parse_args(["export", "RUN"])
    assert args.calibration_method is None and args.percentile is None
    assert _onnx_options(args)["calibration_method"] == "minmax"
    assert litert_calibration.DEFAULT_PERCENTILE == 99.999


class _Tiny(nn.Module):
    """(1, 2, 4) -> flatten -> fc a -> relu(fc b) -> fc c -> (1, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(self.a(x.flatten(1)))))


@needs_litert
def test_percentile_ranges_ignore_a_rare_loud_clip(tmp_path: Path) -> None:
    """200 quiet clips and one 30x louder: min-max ranges are set by the loud clip, so the quiet
    clips get a coarser step; the 99th percentile of each tensor's values leaves the loud clip's
    values (0.5 % of them) out, and the quiet clips' int8 logits follow float more closely.
    Measured: mean |logit error| on the quiet clips 0.0070 (percentile) against 0.025
    (min-max)."""
    torch.manual_seed(0)
    model = _Tiny().eval()
    rng = np.random.default_rng(0)
    quiet = [rng.standard_normal((1, 2, 4)).astype(np.float32) for _ in range(200)]
    loud = 30 * rng.standard_normal((1, 2, 4)).astype(np.float32)
    (tmp_path / "f.tflite").write_bytes(litert.convert_module(model, (torch.zeros(1, 2, 4),)))
    calib = [*quiet, loud]
    minmax = litert.quantize_int8(tmp_path / "f.tflite", tmp_path / "mm.tflite", calib)
    clipped = litert.quantize_int8(
        tmp_path / "f.tflite", tmp_path / "p.tflite", calib, calibration_method="percentile",
        percentile=99.0,
    )  # fmt: skip
    ref = torch.cat([model(torch.from_numpy(c)) for c in quiet]).detach().numpy()
    err_minmax = np.abs(litert.run_tflite(minmax, quiet) - ref).mean()
    err_clipped = np.abs(litert.run_tflite(clipped, quiet) - ref).mean()
    assert err_clipped < err_minmax / 2
    with pytest.raises(BadValueError, match="'entropy'"):
        litert.quantize_int8(tmp_path / "f.tflite", tmp_path / "e.tflite", calib, False, "entropy")


class _OneConv(nn.Module):
    """(1, 4, T) -> conv -> mean over time -> (1, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(-1)


@needs_litert
def test_mse_ranges_reach_the_int8_file(tmp_path: Path) -> None:
    """Heavy-tailed inputs (Student's t, 3 degrees of freedom; 80,000 values): the int8 file's
    quantized input has the step of `mse_range` over the input's histogram, finer than min-max's
    (measured: 0.354 against 0.381, the top tail cut)."""
    from ai_edge_litert.interpreter import Interpreter

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    calib = [rng.standard_t(3, (1, 4, 1000)).astype(np.float32) for _ in range(20)]
    (tmp_path / "f.tflite").write_bytes(
        litert.convert_module(_OneConv().eval(), (torch.zeros(1, 4, 1000),))
    )
    path = litert.quantize_int8(
        tmp_path / "f.tflite", tmp_path / "mse.tflite", calib, calibration_method="mse"
    )
    it = Interpreter(str(path))
    first = it._get_ops_details()[0]
    assert first["op_name"] == "QUANTIZE"
    step = it.get_tensor_details()[first["outputs"][0]]["quantization"][0]
    values = np.concatenate([c.ravel() for c in calib])
    lo, hi = float(values.min()), float(values.max())
    counts = np.histogram(values, litert_calibration.HISTOGRAM_BINS, (lo, hi))[0]
    low, high = mse_range(counts, lo, hi)
    assert step == pytest.approx((high - low) / 255, rel=1e-5)
    assert step < 0.95 * (hi - lo) / 255


@needs_litert
def test_export_reports_the_calibration(
    tiny_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from distill.cli import main

    report = litert_export.export_tflite_run(
        tiny_run["run_dir"], int8=True, limit_batches=1, out_dir=tmp_path,
        calibration_method="percentile", percentile=99.9,
    )  # fmt: skip
    assert report["calibration_method"] == "percentile"
    assert report["calibration_percentile"] == 99.9
    assert Path(report["files"]["int8_ptq"]["path"]).is_file()
    assert "int8 activation ranges: percentile (99.9th percentile" in (
        litert_export.format_tflite_report(report)
    )
    run = str(tiny_run["run_dir"])
    assert main(["export", run, "--format", "tflite", "--calibration-method", "entropy"]) == 2
    assert "--calibration-method entropy and --int8-ops apply to --format onnx" in (
        capsys.readouterr().err
    )
    for variant in ("features", "waveform"):  # every ONNX path refuses it, before any work
        assert main(["export", run, "--variant", variant, "--calibration-method", "mse"]) == 2
        assert "--calibration-method mse applies to --format tflite only" in (
            capsys.readouterr().err
        )
    assert main(["export", run, "--percentile", "99.9"]) == 2
    assert "--int8-io and --percentile apply to --format tflite only" in capsys.readouterr().err
    assert main(["export", run, "--variant", "stateful", "--no-equalize"]) == 2
    assert "--no-equalize apply to --variant features --format tflite only" in (
        capsys.readouterr().err
    )
    # equalization is on by default and reported (TC-ResNet8 has no run to equalize)
    assert report["equalized_ranges"] is True
    assert "per-channel ranges equalized before int8: 0 ReLU outputs" in (
        litert_export.format_tflite_report(report)
    )


def _op_counts(path: Path) -> dict[str, int]:
    from collections import Counter

    from ai_edge_litert import schema_py_generated as schema

    from distill.deploy.memory import op_names

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    codes, graph = op_names(model), model.Subgraphs(0)
    return dict(
        Counter(codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength()))
    )


@needs_litert
def test_percentile_ranges_add_no_requantization(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DS-CNN-S's first convolution runs as slices of the input (its taps) concatenated into a
    1x1 convolution: tensors that share one int8 scale. Clipped one by one their ranges differ
    and the quantizer requantizes at the edges (40 QUANTIZE operators in the trained 8 s
    student); `same_scale_ranges` keeps them equal, so the percentile file has min-max's
    operators."""
    from distill import students

    torch.manual_seed(0)
    model = students.create("ds_cnn_s", num_classes=12, n_features=40).eval()
    graph = litert.convert_float(model, tmp_path / "f.tflite", 40, 51, for_int8=True)
    calib = [np.random.default_rng(0).standard_normal((16, 40, 51)).astype(np.float32)]
    minmax = litert.quantize_int8(graph, tmp_path / "mm.tflite", calib)
    clipped = litert.quantize_int8(
        graph, tmp_path / "p.tflite", calib, calibration_method="percentile", percentile=99.0
    )
    assert _op_counts(clipped) == _op_counts(minmax)
    # the same ranges without making them consistent: requantizing operators appear
    monkeypatch.setattr(litert_calibration, "same_scale_ranges", lambda path, ranges: ranges)
    apart = litert.quantize_int8(
        graph, tmp_path / "a.tflite", calib, calibration_method="percentile", percentile=99.0
    )
    assert _op_counts(apart)["QUANTIZE"] > _op_counts(minmax)["QUANTIZE"]
