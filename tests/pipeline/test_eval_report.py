"""The metrics of docs/metrics.md from one test pass: in results.json after `distill fit`, in
`distill eval` (JSON and --table) and in the results.csv row of a grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill.cli import main
from distill.core.losses.arms import Arm
from distill.data import build_datamodule
from distill.pipeline.evaluate import evaluate_checkpoint
from distill.pipeline.fit import fit
from distill.report.results import result_row
from tests.helpers.recipes import tiny_recipe


@pytest.fixture(scope="module")
def kws_run(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A teacher-free single-label run (1 epoch of TC-ResNet8 on the tiny keyword bank)."""
    cfg = tiny_recipe(tiny_kws_bank, tmp_path_factory.mktemp("eval_report"))
    cfg.teacher.kind, cfg.teacher.path = "none", None
    return {"cfg": cfg, "fit": fit(cfg)}


def test_fit_writes_the_test_report_into_results_json(kws_run: dict) -> None:
    results = kws_run["fit"]
    saved = json.loads((Path(results.run_dir) / "results.json").read_text())
    report = saved["test_report"]
    labels = torch.cat(
        [b["label"] for b in build_datamodule(kws_run["cfg"].data).dataloader("test")]
    )
    counts = torch.tensor(report["confusion_matrix"]["counts"])
    # one row per true class: the row sums are the test split's class counts
    assert counts.sum(1).tolist() == torch.bincount(labels, minlength=len(counts)).tolist()
    assert [r["support"] for r in report["per_class"]] == counts.sum(1).tolist()
    # the diagonal share is the accuracy the training loop logged on the same pass
    assert float(counts.trace() / counts.sum()) == pytest.approx(results.test["test/acc"], abs=1e-6)
    for name in ("balanced_acc", "macro_f1"):
        assert results.test[f"test/{name}"] == report["scalars"][name]
    row = result_row("tc_resnet8", Arm("none"), 0, results)
    assert row["macro_f1"] == report["scalars"]["macro_f1"] and "lwlrap" not in row


def test_eval_reports_the_same_metrics_as_fit(kws_run: dict) -> None:
    results = kws_run["fit"]
    scored = evaluate_checkpoint(results.best_checkpoint, split="test")
    assert scored["report"]["confusion_matrix"] == results.test_report["confusion_matrix"]
    for name in ("acc", "balanced_acc", "macro_f1"):
        assert scored["metrics"][f"test/{name}"] == pytest.approx(results.test[f"test/{name}"])
    val = evaluate_checkpoint(results.best_checkpoint, split="val")
    assert "val/macro_f1" in val["metrics"] and val["report"]["clips"] > 0


def test_eval_command_prints_json_and_tables(kws_run: dict, capsys: pytest.CaptureFixture) -> None:
    ckpt = kws_run["fit"].best_checkpoint
    assert main(["eval", ckpt]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{\n") :])  # after Lightning's progress bar
    assert printed["report"]["per_class"][0]["class"] == "yes"
    assert main(["eval", ckpt, "--table"]) == 0
    text = capsys.readouterr().out
    assert "confusion matrix (rows: true class #, columns: predicted class #)" in text
    assert "test/macro_f1" in text and "_silence_" in text


def test_multi_label_fit_reports_map_auroc_and_lwlrap(tmp_path: Path) -> None:
    from tests.data.fakes import make_fsd50k

    root = tmp_path / "fsd"
    vocab = ["Bark", "Music", "Speech"]
    dev = [(str(i), [vocab[i % 3]], "train", 1.0) for i in range(6)]
    dev += [("6", ["Bark"], "val", 1.0), ("7", ["Music", "Speech"], "val", 1.0)]
    test = [("8", ["Bark", "Music"], 1.0), ("9", ["Speech"], 1.0), ("10", ["Music"], 1.0)]
    make_fsd50k(root, vocab, dev, test, sr=16000)
    cfg = tiny_recipe(root, tmp_path)
    cfg.data.name, cfg.data.task, cfg.data.classes = "fsd50k", "multi_label", "all"
    cfg.data.train_variants = 0
    cfg.data.clip_seconds = 1.0
    cfg.teacher.kind, cfg.teacher.path = "none", None
    results = fit(cfg)
    report = results.test_report
    assert "confusion_matrix" not in report and report["clips"] == 3
    # Bark 1, Music 2, Speech 1 positive test clips
    assert [r["support"] for r in report["per_class"]] == [1, 2, 1]
    # the report's macro mAP comes from the same logits as the training loop's headline
    assert report["scalars"]["mAP"] == pytest.approx(results.test["test/mAP"], abs=1e-5)
    for name in ("micro_mAP", "auroc", "lwlrap"):
        assert 0.0 < results.test[f"test/{name}"] <= 1.0
