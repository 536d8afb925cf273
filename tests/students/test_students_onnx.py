"""Every built-in exports to ONNX with dynamic batch and time and matches PyTorch in onnxruntime.

The legacy TorchScript exporter (`dynamo=False`) is used: the torch.export-based exporter
unrolls RNNs to the traced length, so time would not stay dynamic.
"""

from __future__ import annotations

import warnings

import onnxruntime as ort
import pytest
import torch
from torch import nn

from distill import students


def _randomise_bn_statistics(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)


@pytest.mark.parametrize("name", students.available())
def test_onnx_export_dynamic_time(name: str, tmp_path) -> None:
    paper = students.spec(name).paper_input
    n_features = paper[0] if paper else 40
    torch.manual_seed(0)  # weight init (timm models draw from the global generator)
    generator = torch.Generator().manual_seed(0)
    model = students.create(name, num_classes=5, n_features=n_features).eval()
    with torch.no_grad():
        _randomise_bn_statistics(model, generator)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, n_features, 49, generator=generator),),
            str(path),
            dynamo=False,
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for frames in (101, 160):
        x = torch.randn(2, n_features, frames, generator=generator)
        (got,) = session.run(None, {"features": x.numpy()})
        with torch.no_grad():
            expected = model(x)
        assert got.shape == (2, 5)
        assert expected.abs().max() > 1e-3, "outputs too small for a meaningful comparison"
        assert torch.allclose(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4), name
