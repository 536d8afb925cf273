"""QAT through Lightning with temporal KD on, conversion, and the PT2E tap wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import students
from distill.quant.pt2e import prepare_qat, quantization_config
from distill.quant.qat import run_qat
from distill.train import load_student


def test_qat_runs_with_temporal_kd_and_converts(tiny_run: dict) -> None:
    run_dir: Path = tiny_run["run_dir"]
    results = run_qat(run_dir / "checkpoints" / "best.ckpt", tiny_run["cfg"], run_dir=run_dir)
    qat = results.pop("qat_module")
    assert results["fake_quant_modules"] > 10
    metrics = (run_dir / "qat" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/temporal_kd_epoch" in metrics and "train/logit_kd_epoch" in metrics
    model, _ = load_student(run_dir / "qat" / "qat_student.pt")
    fresh = students.create("tc_resnet8", num_classes=12, n_features=40)
    assert list(model.state_dict()) == list(fresh.state_dict())
    x = torch.randn(3, 40, 101)
    int8 = qat.convert()
    with torch.no_grad():
        got = int8(x)
        ref = model(x)
    assert got.shape == (3, 12)
    assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 2 / 3


@pytest.mark.parametrize(
    "name",
    [
        "tc_resnet8",
        pytest.param("bc_resnet1", marks=pytest.mark.slow),
        pytest.param("gru", marks=pytest.mark.slow),
    ],
)
def test_prepared_graph_reports_tap_features(name: str) -> None:
    torch.manual_seed(0)
    model = students.create(name, num_classes=4, n_features=40)
    spec = students.spec(name)
    qat = prepare_qat(model, [(spec.default_tap, spec.tap_layout)], torch.randn(2, 40, 101))
    qat.train()
    logits = qat(torch.randn(5, 40, 101))
    feats = qat.taps[0].features()
    assert logits.shape == (5, 4) and feats.shape[0] == 5 and feats.dim() == 3
    (logits.sum() + feats.mean()).backward()
    assert model.state_dict().keys() == qat.student_state_dict().keys()


def test_lower_weight_bits_narrow_the_range() -> None:
    assert quantization_config(4).weight.quant_min == -8
    assert quantization_config(8).weight.quant_max == 127
    with pytest.raises(ValueError, match="qat.weight_bits=1"):
        quantization_config(1)


def test_qat_rebuilds_losses_from_overrides(tiny_run: dict) -> None:
    from omegaconf import OmegaConf

    from distill.module import DistillModule
    from distill.quant.qat import with_losses

    ckpt = tiny_run["run_dir"] / "checkpoints" / "best.ckpt"
    module = DistillModule.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=False)
    assert with_losses(module, module.cfg) is module
    cfg = OmegaConf.merge(module.cfg, {"losses": {"logit_kd": {"weight": 0.0}}})
    cfg.losses.temporal_kd.weight = 0.75
    rebuilt = with_losses(module, cfg)
    assert rebuilt is not module
    assert "logit_kd" not in rebuilt.aux.terms
    assert rebuilt.aux.weights["temporal_kd"] == 0.75
    for key, value in module.student.state_dict().items():
        assert torch.equal(rebuilt.student.state_dict()[key], value)
    for key, value in module.aux.state_dict().items():
        assert torch.equal(rebuilt.aux.state_dict()[key], value)
