"""The stateful streaming student as a LiteRT `.tflite` (state as explicit tensors): stepping it
over a stream gives the PyTorch stateful stream's posteriors, it runs from its metadata alone,
and `export_stateful_run(format="tflite")` writes and checks it for a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.deploy import litert
from distill.deploy.onnx_stream import STATEFUL_TOLERANCE, step_seconds_for
from distill.deploy.stream import StreamConfig, waveform_posteriors
from distill.errors import MissingFileError, UsageError
from tests.deploy.stream_helpers import detector, train_briefly

pytestmark = [
    pytest.mark.skipif(
        bool(litert.missing_modules()),
        reason=f"the `litert` extra is not installed (missing {litert.missing_modules()})",
    ),
    pytest.mark.usefixtures("one_thread"),
]
SR = 16000


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with louder tone bursts, so posteriors move."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.02 * rng.standard_normal(t.size)
    for k, start in enumerate(np.arange(0.5, seconds - 0.5, 1.3)):
        inside = (t >= start) & (t < start + 0.4)
        wave[inside] += 0.4 * np.sin(2 * np.pi * (300 + 150 * k) * t[inside])
    return wave.astype(np.float32)


@pytest.mark.parametrize(
    ("name", "kwargs", "normalize"),
    [
        ("tc_resnet8", {"causal": True}, "none"),
        ("gru", {}, "none"),
        ("tc_resnet8", {"causal": True}, "running"),
        ("gru", {}, "frame"),
        ("bc_resnet1", {"causal": True}, "none"),
    ],
)
def test_stateful_tflite_equals_the_pytorch_stream(name, kwargs, normalize, tmp_path) -> None:
    from distill.deploy.litert_stream import export_stateful_tflite, stateful_tflite_parity

    det = detector(name, normalize=normalize, **kwargs)
    train_briefly(det.student)
    step = step_seconds_for(det)
    path = export_stateful_tflite(det, tmp_path / "s.tflite", step)
    parity = stateful_tflite_parity(det, path, audio(6.0))  # chunks of 0.37 and 0.53 s
    assert parity["hops"] == int(6.0 / step)
    assert parity["max_abs_posterior_diff"] <= STATEFUL_TOLERANCE
    assert parity["max_abs_posterior_diff"] < 1e-6  # measured: 3e-8 to 6e-8
    assert parity["argmax_agreement"] == 1.0


def test_no_transpose_touches_a_state_of_the_stateful_tflite(tmp_path) -> None:
    """The convolution states are held channel-last, the layout LiteRT runs convolutions in,
    so the converter needs no TRANSPOSE to read or write them (17 of 96 operators before)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    from distill.deploy.litert_stream import SIGNATURE, export_stateful_tflite

    det = detector("tc_resnet8", causal=True)
    path = export_stateful_tflite(det, tmp_path / "s.tflite", step_seconds_for(det))
    model = fu.read_model(str(path))
    graph = model.subgraphs[0]
    (sig,) = [s for s in model.signatureDefs if s.signatureKey.decode() == SIGNATURE]
    states = {e.tensorIndex for e in [*sig.inputs, *sig.outputs]
              if e.name.decode().startswith(("state_in.", "state_out."))}  # fmt: skip
    assert len(states) > 10
    transpose = schema.BuiltinOperator.TRANSPOSE
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == transpose:
            assert not states & {*op.inputs, *op.outputs}


def test_stateful_tflite_runs_from_its_metadata_alone(tmp_path) -> None:
    """What a user without distill does: the signature's names, states from the metadata, zeros
    first, outputs fed back; the result is PyTorch's stateful stream."""
    from ai_edge_litert.interpreter import Interpreter

    from distill.deploy.litert_stream import export_stateful_tflite, read_tflite_metadata

    det = detector("tc_resnet8", causal=True)
    train_briefly(det.student)
    path = export_stateful_tflite(det, tmp_path / "s.tflite", 0.16, window_seconds=0.8)
    meta = read_tflite_metadata(path)
    assert meta["variant"] == "stateful" and meta["step_samples"] == 2560
    assert meta["window_seconds"] == 0.8 and meta["class_names"] == det.class_names
    assert meta["runtime"] == "LiteRT" and meta["frontend"]["n_fft"] == 512
    step_spec = [s for s in meta["states"] if s["name"] == "step"]
    assert step_spec and step_spec[0]["dtype"] == "int32"
    it = Interpreter(model_path=str(path), num_threads=1)
    run = it.get_signature_runner("serving_default")
    names = it.get_signature_list()["serving_default"]
    assert set(names["inputs"]) == {"samples", *[s["input"] for s in meta["states"]]}
    assert set(names["outputs"]) == {"logits", "ready", *[s["output"] for s in meta["states"]]}
    state = {s["input"]: np.zeros(s["shape"], np.dtype(s["dtype"])) for s in meta["states"]}
    wave, rows = audio(5.0), []
    for i in range(0, len(wave) - 2559, 2560):
        out = run(samples=wave[None, i : i + 2560], **state)
        state = {s["input"]: out[s["output"]] for s in meta["states"]}
        if out["ready"][0]:
            rows.append(torch.from_numpy(out["logits"][0].copy()).softmax(-1).numpy())
    ref = waveform_posteriors(det, wave, StreamConfig("stateful", 0.16, 0.8))
    assert len(rows) == len(ref.scores) == 31
    np.testing.assert_allclose(np.stack(rows), ref.scores, atol=1e-6)


def test_two_streams_of_one_tflite_keep_their_own_state(tmp_path) -> None:
    """Runners of one LiteRT detector stepped in turn: each gives what it gives alone."""
    from distill.deploy.litert_stream import LiteRTStatefulDetector, export_stateful_tflite

    det = detector("tc_resnet8", causal=True)
    train_briefly(det.student)
    lite = LiteRTStatefulDetector(export_stateful_tflite(det, tmp_path / "s.tflite", 0.08))
    waves, step = [audio(3.0, 1), audio(3.0, 2)], lite.step_samples
    alone = []
    for wave in waves:
        runner, rows = lite.open_stateful(SR), []
        for i in range(0, len(wave) - step + 1, step):
            runner.advance(torch.from_numpy(wave[i : i + step]))
            rows.append(runner.posterior())
        alone.append(torch.stack(rows[7:]))  # ready after the 1 s window's first step
    runners, rows = [lite.open_stateful(SR), lite.open_stateful(SR)], [[], []]
    for i in range(0, len(waves[0]) - step + 1, step):
        for k in (0, 1):
            runners[k].advance(torch.from_numpy(waves[k][i : i + step]))
            rows[k].append(runners[k].posterior())
    for k in (0, 1):
        torch.testing.assert_close(torch.stack(rows[k][7:]), alone[k], atol=1e-6, rtol=0)
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)


def test_what_cannot_be_exported_or_read_is_named(tmp_path) -> None:
    from distill.deploy.litert_stream import export_stateful_tflite, read_tflite_metadata

    with pytest.raises(UsageError, match="causal=true"):
        export_stateful_tflite(detector("tc_resnet8"), tmp_path / "x.tflite", 0.08)
    with pytest.raises(MissingFileError, match="nope.tflite does not exist"):
        read_tflite_metadata(tmp_path / "nope.tflite")
    features_in = litert.convert_float(
        detector("tc_resnet8").student, tmp_path / "f.tflite", 40, 101
    )
    with pytest.raises(UsageError, match="no `distill` metadata"):
        read_tflite_metadata(features_in)


@pytest.fixture(scope="module")
def causal_run(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal TC-ResNet8 with a running-normalised log-mel frontend (streams
    statefully)."""
    from distill.pipeline.fit import fit
    from tests.helpers.recipes import tiny_recipe

    cfg = tiny_recipe(tiny_kws_bank, tmp_path_factory.mktemp("causal_lite"))
    cfg.teacher.kind = "none"
    cfg.student.kwargs = {"causal": True}
    cfg.frontend.normalize = "running"
    cfg.frontend.running_seconds = 0.5
    cfg.data.clip_seconds = 1.0
    cfg.trainer.limit_train_batches = 2.0
    cfg.trainer.limit_val_batches = 1.0
    return Path(fit(cfg).run_dir)


def test_export_stateful_run_writes_and_checks_the_tflite(causal_run: Path, tmp_path) -> None:
    import soundfile as sf

    from distill.deploy.detect import detect_file
    from distill.deploy.detector_model import load_detector_model
    from distill.deploy.export_stream import export_stateful_run, format_stream_report
    from distill.deploy.litert_stream import LiteRTStatefulDetector

    report = export_stateful_run(causal_run, format="tflite")
    path = causal_run / "export" / "student_stateful.tflite"
    assert report["path"] == str(path) and path.is_file()
    assert report["hop_seconds"] == pytest.approx(0.08)
    assert report["max_abs_posterior_diff"] < 1e-5 and report["argmax_agreement"] == 1.0
    saved = json.loads((causal_run / "export" / "export_stream.json").read_text())
    assert saved["stateful_tflite"]["path"] == str(path)
    assert "student_stateful.tflite" in format_stream_report("stateful", report)
    # as a streaming backend: the posteriors of the PyTorch run over a long tone stream
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(audio(4.0, 3), 3), SR)
    lite = load_detector_model(path)  # a stateful .tflite loads as the LiteRT backend
    assert isinstance(lite, LiteRTStatefulDetector) and lite.describe()["backend"] == "LiteRT"
    assert lite.meta["frontend"]["normalize"] == "running"
    assert lite.meta["frontend"]["running_seconds"] == 0.5
    config = StreamConfig(hop_seconds=0.08)
    ours = detect_file(lite, long, config).posteriors
    theirs = detect_file(load_detector_model(causal_run), long, config).posteriors
    assert ours.scores.shape == theirs.scores.shape and len(ours.scores) > 100
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)


def test_export_command_writes_the_stateful_tflite_and_detect_runs_it(
    causal_run: Path, tmp_path
) -> None:
    import soundfile as sf

    from distill.cli import main

    out = causal_run / "export" / "student_stateful.tflite"
    assert main(["export", str(causal_run), "--variant", "stateful", "--format", "tflite"]) == 0
    assert out.is_file()
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(audio(4.0, 5), 2), SR)
    found = tmp_path / "found"
    assert main(["detect", str(out), str(long), "--out", str(found), "--hop", "0.08"]) == 0
    record = json.loads((found / "detections.json").read_text())
    assert record["model"]["backend"] == "LiteRT"
    assert main(["export", str(causal_run), "--variant", "waveform", "--format", "tflite"]) == 2


def _op_types(path: Path) -> list[tuple[str, int]]:
    """(operator name, output tensor type) of every operator of a `.tflite`."""
    from ai_edge_litert import schema_py_generated as schema

    from distill.deploy.memory import op_names

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph, names = model.Subgraphs(0), op_names(model)
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    return [(names[op.OpcodeIndex()], graph.Tensors(op.Outputs(0)).Type()) for op in ops]


FLOAT_STATES = ("frontend", "ring", "ring_count", "step")


def _state_out_type(path: Path, name: str) -> int:
    """The output type of the operator computing state `name` (past a DEQUANTIZE at the
    file's boundary)."""
    from ai_edge_litert import schema_py_generated as schema

    from distill.deploy.litert import SIGNATURE, interpreter
    from distill.deploy.memory import op_names

    runner = interpreter(path).get_signature_runner(SIGNATURE)
    index = runner.get_output_details()[f"state_out.{name}"]["index"]
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph, names = model.Subgraphs(0), op_names(model)
    writers = {
        graph.Operators(k).Outputs(0): graph.Operators(k) for k in range(graph.OperatorsLength())
    }
    op = writers[index]
    if names[op.OpcodeIndex()] == "DEQUANTIZE":
        op = writers[op.Inputs(0)]
    return graph.Tensors(op.Outputs(0)).Type()


def test_int8_stateful_tflite_has_an_int8_student_and_a_float_frontend(
    causal_run: Path, tmp_path
) -> None:
    from ai_edge_litert import schema_py_generated as schema

    from distill.cli import main
    from distill.deploy.export_stream import export_stateful_run, format_stream_report
    from distill.deploy.litert_stream import LiteRTStatefulDetector, read_tflite_metadata

    report = export_stateful_run(causal_run, format="tflite", int8=True)
    q = report["int8"]
    path = Path(q["path"])
    assert path == causal_run / "export" / "student_stateful_int8.tflite" and path.is_file()
    assert q["bytes"] < 0.7 * report["bytes"] and q["calibration_split"] == "val"
    # measured 1.3e-4 and 100 % (with the pooled window int8: 0.005 and 78 %)
    assert q["max_abs_posterior_diff_vs_float"] < 0.02 and q["argmax_agreement_with_float"] > 0.9
    assert "student int8, frontend and pooled window float" in format_stream_report(
        "stateful", report
    )
    ops = _op_types(path)
    int8, float32 = schema.TensorType.INT8, schema.TensorType.FLOAT32
    assert ("CONV_2D", int8) in ops and ("CONV_2D", float32) not in ops  # the student
    assert ("LOG", float32) in ops and ("DEPTHWISE_CONV_2D", float32) in ops  # the frontend
    # the pooled window (masked mean over the ring of past steps) and every state that is not
    # the student's (carried audio, running mean and variance, ring, counters) stay float
    assert ("DIV", int8) not in ops and ("SUM", int8) not in ops and ("SUM", float32) in ops
    names = [spec["name"] for spec in read_tflite_metadata(path)["states"]]
    kept = [name for name in names if name.split(".")[0] in FLOAT_STATES]
    assert kept == ["frontend", "frontend.mean", "frontend.var", "ring", "ring_count", "step"]
    assert all(_state_out_type(path, name) != int8 for name in kept)
    assert _state_out_type(path, names[3]) == int8  # a convolution buffer of the student
    meta = read_tflite_metadata(path)
    assert "pooled window float" in meta["int8"] and "val split" in meta["calibration"]
    # driven as the float file (the parity above streamed it): states float at the boundary
    states = LiteRTStatefulDetector(path).open_stateful(16000).state_pairs
    assert len(states) == len(meta["states"])
    assert main(["export", str(causal_run), "--variant", "stateful", "--int8"]) == 2  # ONNX


def test_int8_stateful_refusals(causal_run: Path, tmp_path) -> None:
    from distill.deploy.export_stream import export_stateful_run
    from distill.deploy.litert_stream import convert_step
    from distill.deploy.litert_stream_int8 import (
        FrontendQuantizedError,
        _check_frontend_float,
        float_patterns,
        step_calibration,
    )
    from distill.errors import BadValueError

    with pytest.raises(BadValueError, match="LiteRT only: use --format tflite"):
        export_stateful_run(causal_run, format="onnx", int8=True)
    converted = convert_step(detector("tc_resnet8", causal=True), 0.08)
    with pytest.raises(BadValueError, match="at least one step of audio \\(1280 samples\\)"):
        step_calibration(converted, np.zeros(1000, np.float32))
    assert len(step_calibration(converted, np.zeros(2600, np.float32))) == 2
    with pytest.raises(FrontendQuantizedError, match="names changed"):
        _check_frontend_float(
            litert.short_tensor_names(converted.content), float_patterns(converted)
        )


def test_int8_stateful_outputs_are_graph_outputs_when_a_state_is_a_whole_conv_output(
    tmp_path,
) -> None:
    """At a 0.16 s step a TC-ResNet8 block's carried input is the whole output of the conv
    before it, which other operators read too: the quantizer made the graph output a
    requantized copy and left the signature on an int8 tensor LiteRT never fills (the runner
    failed with "Tensor data is null"); the exported file streams."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    from distill.deploy.litert_stream import stateful_tflite_parity
    from distill.deploy.litert_stream_int8 import export_stateful_tflite_int8

    det = detector("tc_resnet8", normalize="running", causal=True)
    wave = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 0.1
    path = export_stateful_tflite_int8(det, tmp_path / "step.tflite", wave, step_seconds=0.16)
    model = fu.read_model_from_bytearray(bytearray(path.read_bytes()))
    outputs = set(int(i) for i in model.subgraphs[0].outputs)
    assert all(int(e.tensorIndex) in outputs for e in model.signatureDefs[0].outputs)
    parity = stateful_tflite_parity(det, path, wave)
    assert parity["hops"] > 0 and parity["max_abs_posterior_diff"] < 0.1
