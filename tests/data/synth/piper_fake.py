"""A tiny multi-speaker voice in Piper's file format (graph + .onnx.json), built with onnx.

Same inputs and output as a Piper VITS export (`input`, `input_lengths`, `scales`, `sid` ->
`output` [1, 1, 1, n]), a speaker-embedding table read by Gather(table, sid), and a
RandomNormalLike noise. The output is `noise * scales[0] * 0.05 + sin(ids) * 0.1 + sum(emb) * 0.01`
(400 samples per phoneme id at 16 kHz), so a blend of two speakers gives the blend of their
outputs and the noise is visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_fake_voice(folder: Path, name: str = "fake", speakers: int = 4, id_map=None) -> Path:
    """Write `<folder>/<name>.onnx` and its `.onnx.json`; returns the model path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    folder.mkdir(parents=True, exist_ok=True)
    table = np.arange(speakers * 4, dtype=np.float32).reshape(speakers, 4) / 4.0
    consts = {
        "table": table,
        "repeats": np.asarray([1, 400], np.int64),
        "axis1": np.asarray([1], np.int64),
        "axes12": np.asarray([1, 2], np.int64),
        "zero": np.asarray(0, np.int64),
        "c_noise": np.asarray([0.05], np.float32),
        "c_freq": np.asarray([0.1], np.float32),
        "c_sin": np.asarray([0.1], np.float32),
        "c_emb": np.asarray([0.01], np.float32),
    }
    nodes = [
        helper.make_node("Gather", ["table", "sid"], ["g"]),
        helper.make_node("ReduceSum", ["g", "axis1"], ["gs"], keepdims=1),
        helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Tile", ["xf", "repeats"], ["rep"]),
        helper.make_node("RandomNormalLike", ["rep"], ["noise"], dtype=TensorProto.FLOAT),
        helper.make_node("Gather", ["scales", "zero"], ["ns"]),
        helper.make_node("Mul", ["noise", "ns"], ["n1"]),
        helper.make_node("Mul", ["n1", "c_noise"], ["n2"]),
        helper.make_node("Mul", ["rep", "c_freq"], ["ph"]),
        helper.make_node("Sin", ["ph"], ["s1"]),
        helper.make_node("Mul", ["s1", "c_sin"], ["s2"]),
        helper.make_node("Mul", ["gs", "c_emb"], ["e1"]),
        helper.make_node("Add", ["n2", "s2"], ["a1"]),
        helper.make_node("Add", ["a1", "e1"], ["a2"]),
        helper.make_node("Unsqueeze", ["a2", "axes12"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_piper",
        [
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, "t"]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("sid", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 1, "n"])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    config = {
        "audio": {"sample_rate": 16000},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_symbols": 256,
        "num_speakers": speakers,
        "speaker_id_map": {},
        "phoneme_id_map": id_map if id_map is not None else DEFAULT_PHONEME_ID_MAP,
    }
    Path(str(path) + ".json").write_text(json.dumps(config))
    return path
