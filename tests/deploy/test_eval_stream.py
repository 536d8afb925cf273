"""`distill eval-stream`: the wake-word metric of a trained run on streams built from its
recipe's data, written beside the run; bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from distill.cli import main
from distill.deploy.stream_run import (
    EvalStreamOptions,
    default_out_dir,
    eval_stream_model,
    frr_columns,
    model_recipe,
)
from distill.errors import MissingFileError, UsageError

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread

HOURS = "0.01"  # 36 s of negatives: enough for the counting, not for a claim


def test_eval_stream_writes_the_metric_beside_the_run(
    tiny_run, tmp_path, capsys, monkeypatch
) -> None:
    run = tiny_run["run_dir"]
    streams = tmp_path / "streams"
    args = ["eval-stream", str(run), "--hours", HOURS, "--seed", "3", "--streams", str(streams)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "FRR (%) at FA/h" in printed and "mean over keywords" in printed
    for kw in ("yes", "go"):
        assert f"  {kw} " in printed
    out = run / "stream_eval"
    result = json.loads((out / "stream_eval.json").read_text())
    assert (out / "det.png").read_bytes()[:4] == b"\x89PNG"
    seconds = {row["name"]: row["seconds"] for row in result["streams"]}
    assert seconds["neg_synth_000"] == pytest.approx(36.0)
    # negative audio: all of the negative stream, and the positive stream outside keywords
    assert 36.0 < 3600 * result["negative_hours"] < 36.0 + seconds["pos_000"]
    assert set(result["at_fa_per_hour"]) == {"0.1", "0.5", "1"}
    assert result["keywords"] == ["yes", "no", "up", "down", "left", "right", "on", "off",
                                  "stop", "go"]  # fmt: skip
    assert result["positives"] == {kw: 1 for kw in result["keywords"]}  # one test speaker
    assert result["stream"]["mode"] == "sliding" and result["stream"]["hop_seconds"] == 0.1
    assert result["stream_set"]["root"] == str(streams)
    assert result["options"]["seed"] == 3 and result["model"]["backend"] == "pytorch"
    columns = frr_columns(result)
    assert set(columns) == {"frr_at_0.1_fa_h", "frr_at_0.5_fa_h", "frr_at_1_fa_h",
                            "stream_latency_median_s", "stream_negative_hours"}  # fmt: skip
    assert 0.0 <= columns["frr_at_0.5_fa_h"] <= 1.0
    # unchanged inputs: the result is reused; other settings score again
    assert main(args) == 0 and "(reused" in capsys.readouterr().out
    assert main([*args, "--smooth", "1"]) == 0 and "(reused" not in capsys.readouterr().out
    assert json.loads((out / "stream_eval.json").read_text())["options"]["smooth_hops"] == 1
    assert main([*args, "--smooth", "1"]) == 0 and "(reused" in capsys.readouterr().out
    # a new version of the metric scores again
    monkeypatch.setattr("distill.deploy.stream_eval.METRIC_VERSION", -1)
    assert main([*args, "--smooth", "1"]) == 0 and "(reused" not in capsys.readouterr().out


def test_a_negative_folder_without_audio_is_an_error(tiny_run, tmp_path, capsys) -> None:
    empty = tmp_path / "real"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no audio here")
    args = ["eval-stream", str(tiny_run["run_dir"]), "--hours", HOURS, "--negatives", str(empty)]
    assert main([*args, "--streams", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds no audio" in err and str(empty) in err
    assert not (tmp_path / "o" / "stream_eval.json").exists()
    with pytest.raises(UsageError, match="negative audio"):
        eval_stream_model(tiny_run["run_dir"], None, tmp_path, EvalStreamOptions(hours=0.0))


def test_the_recipe_comes_from_the_run_or_is_asked_for(tiny_run, tmp_path) -> None:
    run = tiny_run["run_dir"]
    assert model_recipe(run / "checkpoints" / "best.ckpt").data.root == str(
        tiny_run["cfg"].data.root
    )
    assert model_recipe(run, overrides=["data.root=/elsewhere"]).data.root == "/elsewhere"
    lonely = tmp_path / "student.safetensors"
    shutil.copy(run / "student.safetensors", lonely)
    with pytest.raises(MissingFileError, match="--recipe"):
        model_recipe(lonely)
    assert default_out_dir(run) == run / "stream_eval"
    assert default_out_dir(run / "checkpoints" / "best.ckpt") == run / "stream_eval"
    onnx = run / "export" / "student_waveform_float.onnx"
    assert default_out_dir(onnx) == run / "stream_eval" / "student_waveform_float"
    assert default_out_dir(lonely) == tmp_path / "stream_eval"
