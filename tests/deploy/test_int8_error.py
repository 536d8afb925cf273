"""`activation_sqnr` gives onnxruntime's `qdq_loss_debug` numbers (docs/qat_export.md, "Where the
int8 accuracy goes", says why the module keeps its own streaming version)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from distill import students
from distill.deploy.int8 import quantize_onnx
from distill.deploy.int8_error import activation_sqnr
from distill.deploy.onnx_io import export_float


class _Reader:
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter([{"features": b} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def __iter__(self):
        return self._it


def ort_sqnr(float_path: Path, int8_path: Path, batches: list[np.ndarray], tmp: Path) -> dict:
    """qdq_loss_debug's SQNR (dB) of float vs int8 per activation, and of the logits."""
    from onnxruntime.quantization import qdq_loss_debug as debug
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / "pre.onnx"  # the float graph quantize_onnx quantized (its tensor names)
    quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
    debug.modify_model_output_intermediate_tensors(str(pre), str(tmp / "float_all.onnx"))
    debug.modify_model_output_intermediate_tensors(str(int8_path), str(tmp / "int8_all.onnx"))
    floats = debug.collect_activations(str(tmp / "float_all.onnx"), _Reader(batches))
    int8s = debug.collect_activations(str(tmp / "int8_all.onnx"), _Reader(batches))
    matched = debug.create_activation_matching(int8s, floats)
    errors = debug.compute_activation_error(matched)
    result = {name: e["xmodel_err"] for name, e in errors.items() if "xmodel_err" in e}
    sqnr = debug.compute_signal_to_quantization_noice_ratio
    result["logits"] = sqnr(floats["logits"], int8s["logits"])
    return result


@pytest.mark.parametrize(("name", "op_types"), [("tc_resnet8", None), ("bc_resnet1", "auto")])
def test_activation_sqnr_equals_onnxruntimes_qdq_loss_debug(
    name: str, op_types: str | None, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = students.create(name, num_classes=12, n_features=40).eval()
    float_path = export_float(model, tmp_path / "f.onnx", 40, 51)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((3, 40, 51)).astype(np.float32) for _ in range(2)]
    int8_path = tmp_path / "q.onnx"
    quantize_onnx(float_path, int8_path, batches, op_types=op_types)
    rows = activation_sqnr(float_path, int8_path, batches, chunk=2)  # chunks of 2 and 1
    ours = {r["tensor"]: r["sqnr_db"] for r in rows}
    theirs = ort_sqnr(float_path, int8_path, batches, tmp_path)
    assert set(ours) == set(theirs) and len(ours) > 5
    # float64 energies here, float32 norms there: equal to well under a thousandth of a dB
    assert max(abs(ours[t] - theirs[t]) for t in ours) < 1e-3
