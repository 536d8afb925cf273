"""The XNNPACK rewrites of the LiteRT export: the same function as the student, and the patterns
XNNPACK runs slowly in int8 gone from the converted graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from distill.students.bc_resnet import FrequencyMean
from torch import nn

from distill import students
from distill.deploy import litert
from distill.deploy.litert_patterns import (
    BandConv,
    DepthwiseMean,
    RewriteError,
    TapConv,
    xnnpack_rewrite,
)
from tests.helpers.markers import needs_litert


def student(name: str, **kwargs: object) -> nn.Module:
    """Random weights and random BatchNorm statistics (the norms are not identities)."""
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40, **kwargs).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.2, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
    return model


@pytest.mark.parametrize(
    ("name", "kwargs", "taps", "bands", "means"),
    [
        ("ds_cnn_s", {}, 1, 0, 0),
        ("ds_cnn_s", {"causal": True}, 1, 0, 0),
        ("bc_resnet1", {}, 1, 12, 8),  # the 8 blocks of stages 2 and 3 average 5 rows
        ("bc_resnet1", {"causal": True}, 1, 12, 8),
        ("tc_resnet8", {}, 0, 0, 0),
    ],
)
@pytest.mark.parametrize("frames", [51, 101])
def test_rewrite_computes_what_the_student_computes(
    name, kwargs, taps, bands, means, frames
) -> None:
    model = student(name, **kwargs)
    float_graph = xnnpack_rewrite(model, 40, frames)[0]  # the float file keeps every MEAN
    assert not any(isinstance(m, DepthwiseMean) for m in float_graph.modules())
    rewritten, done = xnnpack_rewrite(model, 40, frames, for_int8=True)
    kinds = [type(m) for m in rewritten.modules()]
    assert kinds.count(TapConv) == taps and kinds.count(BandConv) == bands
    assert kinds.count(DepthwiseMean) == means
    assert kinds.count(FrequencyMean) == {"bc_resnet1": 12}.get(name, 0) - means  # 20, 10 rows
    assert len(done) == taps + bands + means
    assert not any(isinstance(m, TapConv | BandConv | DepthwiseMean) for m in model.modules())
    x = torch.randn(3, 40, frames)
    with torch.no_grad():
        ref, got = model(x), rewritten(x)
    # float rounding only: measured about 3e-8 on logits of size 0.5
    assert (ref - got).abs().max() < 1e-5


def test_tap_conv_with_strides_dilation_and_padding() -> None:
    torch.manual_seed(0)
    for kwargs in [
        {"kernel_size": (4, 10), "stride": (2, 2)},
        {"kernel_size": 5, "stride": (2, 1), "padding": 2},
        {"kernel_size": (3, 3), "stride": (3, 2), "padding": (1, 2), "dilation": (2, 3)},
    ]:
        conv = nn.Conv2d(1, 8, **kwargs).eval()
        x = torch.randn(2, 1, 23, 37)
        with torch.no_grad():
            torch.testing.assert_close(TapConv(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("freq_in", "stride", "dilation", "rows"),
    [(5, 1, 1, 1), (10, 2, 1, 1), (5, 1, 2, 1), (10, 1, 1, 2), (20, 2, 1, 2)],
)
def test_band_conv_matches_conv_and_subspectral_norm(freq_in, stride, dilation, rows) -> None:
    """One-row bands read only real input rows (no zero padding); wider bands pad the map."""
    from distill.students.subspectral_norm import SubSpectralNorm

    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, (3, 1), (stride, 1), (dilation, 0), (dilation, 1), groups=6, bias=False)
    norm = SubSpectralNorm(6, 5).eval()
    with torch.no_grad():
        norm.bn.running_mean.normal_(0, 0.3)
        norm.bn.running_var.uniform_(0.2, 2.0)
        norm.bn.weight.uniform_(0.5, 1.5)
        norm.bn.bias.normal_(0, 0.3)
    band = BandConv(conv.eval(), norm, freq_in)
    assert band.rows == rows
    if rows == 1:  # the edge bands keep only the taps over real rows
        kept = [getattr(band, f"weight{k}").shape[2] for k in range(5)]
        assert kept[0] == 3 - 1 and kept[-1] <= 3 and kept[2] == 3
    x = torch.randn(2, 6, freq_in, 17)
    with torch.no_grad():
        torch.testing.assert_close(band(x), norm(conv(x)), atol=1e-5, rtol=1e-5)


def test_a_rewrite_that_changes_the_output_is_refused(monkeypatch) -> None:
    real = BandConv.forward
    monkeypatch.setattr(BandConv, "forward", lambda self, x: real(self, x) * 1.01)
    with pytest.raises(RewriteError, match="changed its output.*rewrite=False"):
        xnnpack_rewrite(student("bc_resnet1"), 40, 51)


def _op_inputs(path: Path) -> list[tuple[str, list[int]]]:
    """(operator, shape of its first input) of a .tflite, in execution order."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(path))
    graph = model.subgraphs[0]
    return [
        (fu.opcode_to_name(model, op.opcodeIndex), list(graph.tensors[op.inputs[0]].shape))
        for op in graph.operators
    ]


@needs_litert
@pytest.mark.parametrize("name", ["ds_cnn_s", "bc_resnet1"])
def test_rewritten_tflite_has_no_one_channel_depthwise_and_no_norm_transposes(
    name: str, tmp_path: Path
) -> None:
    model = student(name)
    plain = litert.convert_float(model, tmp_path / "plain.tflite", 40, 51, rewrite=False)
    fast = litert.convert_float(model, tmp_path / "fast.tflite", 40, 51)
    before, after = _op_inputs(plain), _op_inputs(fast)
    multiplier = [op for op, shape in before if op == "DEPTHWISE_CONV_2D" and shape[-1] == 1]
    assert len(multiplier) == 1  # the converter's form of the one-input-channel conv
    assert not [op for op, shape in after if op == "DEPTHWISE_CONV_2D" and shape[-1] == 1]
    if name == "bc_resnet1":  # two TRANSPOSEs around each of the 12 sub-spectral norms
        assert [op for op, _ in before].count("TRANSPOSE") >= 24
        assert [op for op, _ in after].count("TRANSPOSE") <= 2
        # PADs: the taps' input, the neck's time padding and the 4 bands of more than one row
        # (at 51 frames stages 2 and 3 have one row per band: they read real rows only)
        bands = [m.rows for m in xnnpack_rewrite(model, 40, 51)[0].modules()
                 if isinstance(m, BandConv)]  # fmt: skip
        assert [op for op, _ in after].count("PAD") == 2 + sum(r > 1 for r in bands) == 6
    feats = [np.random.default_rng(0).standard_normal((4, 40, 51)).astype(np.float32)]
    with torch.no_grad():
        ref = model(torch.from_numpy(feats[0])).numpy()
    for path in (plain, fast):
        assert np.abs(litert.run_tflite(path, feats) - ref).max() < 1e-4
    # the plain graph is all XNNPACK; the rewritten one but for the taps' CONCATENATION, wider
    # than the 5 inputs XNNPACK takes, which LiteRT's built-in kernel runs
    assert fully_delegated(plain) and not fully_delegated(fast)
    wide = [n for n in _concat_widths(fast) if n > 5]
    assert wide == [{"ds_cnn_s": 40, "bc_resnet1": 25}[name]]


def fully_delegated(path: Path) -> bool:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    options = Options(HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=1))
    return bool(CompiledModel.from_file(str(path), options=options).is_fully_accelerated())


def _concat_widths(path: Path) -> list[int]:
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(path))
    return [
        len(op.inputs)
        for op in model.subgraphs[0].operators
        if fu.opcode_to_name(model, op.opcodeIndex) == "CONCATENATION"
    ]
