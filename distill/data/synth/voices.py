"""Which voices speak a bank: the `--tts` specification, parsed into entries of voices.

    --tts SPEC      SPEC = ENTRY[,ENTRY...]      ENTRY = BACKEND[:ARG][=WEIGHT]  or  auto

- `espeak[:ACCENT[+VARIANT]]`: eSpeak NG English accents x variants (all, or those named);
- `flite[:VOICE]`, `festival[:VOICE]`: the voices of those programs (all, or the one named);
- `piper[:ARG][#N|#A-B]`: ARG is a packaged voice (`joe`; none: every packaged voice), a `.onnx`
  file (its `.onnx.json` beside it) or a folder of them; `#N`/`#A-B` picks speakers of a
  multi-speaker model (default: all); one voice per model and speaker.

`auto` (the default) is `DEFAULT_TTS`: eSpeak NG, Flite, Festival and Piper (every packaged
voice), equal shares of the speakers: the mix that worked best on real speech (docs/results.md,
"Synthetic-to-real gap"). A backend of it that is not installed is an error naming its install
command, never a silent fallback. (Until 2026-12-03 `auto` pooled every eSpeak NG voice with
Flite's, drawn uniformly, so eSpeak NG spoke 99 % of the clips; `espeak` alone is that voice.)
Speakers are shared between entries in proportion to their weights (default 1
each). Each voice belongs to a *group*, the identity a split keeps whole (an eSpeak NG variant,
a Flite/Festival/Piper voice, one speaker of a multi-speaker Piper model).
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.data.synth import tts_piper
from distill.data.synth.tts import (
    ESPEAK_ACCENTS,
    UNREPRODUCIBLE_ESPEAK,
    espeak_variants,
    espeak_voices,
    flite_voices,
)
from distill.data.synth.tts_festival import INSTALL as FESTIVAL_INSTALL
from distill.data.synth.tts_festival import festival_voices
from distill.errors import BadValueError, UsageError

BACKENDS = ("espeak", "flite", "festival", "piper")
DEFAULT_TTS = "espeak,flite,festival,piper"  # what `auto` (the default) stands for
INSTALL = {
    "espeak": "pip install 'temporal-distill[synth]'",
    "flite": "apt-get install flite",
    "festival": FESTIVAL_INSTALL,
    "piper": tts_piper.INSTALL,
}


@dataclass(frozen=True)
class VoiceRef:
    """One voice: its name (`backend:...`), its split group and, for Piper, its model files."""

    voice: str
    group: str
    model: str = ""
    config: str = ""

    @property
    def backend(self) -> str:
        return self.voice.split(":", 1)[0]


@dataclass(frozen=True)
class Entry:
    """One item of `--tts`: its text, weight and voices."""

    spec: str
    weight: float
    voices: tuple[VoiceRef, ...]


def _espeak(arg: str) -> list[VoiceRef]:
    names = espeak_voices()
    if arg:
        accent, _, variant = arg.partition("+")
        if accent not in ESPEAK_ACCENTS:
            raise BadValueError(f"espeak:{arg}: accent {accent!r} not in {list(ESPEAK_ACCENTS)}")
        if variant in UNREPRODUCIBLE_ESPEAK:
            raise BadValueError(f"espeak:{arg}: variant {variant} is not reproducible; left out")
        if variant and variant not in espeak_variants():
            raise BadValueError(f"espeak:{arg}: no eSpeak NG variant {variant!r}")
        names = [v for v in names if v.split(":")[1].split("+")[0] == accent]
        names = [v for v in names if not variant or v.endswith(f"+{variant}")]
    return [VoiceRef(v, "espeak:+" + v.split("+", 1)[1]) for v in names]


def _program(backend: str, arg: str, installed: tuple[str, ...]) -> list[VoiceRef]:
    if not installed:
        raise UsageError(f"backend {backend} is not installed ({INSTALL[backend]})")
    names = list(installed)
    if arg:
        if f"{backend}:{arg}" not in installed:
            raise BadValueError(f"{backend}:{arg}: no such voice; installed: {names}")
        names = [f"{backend}:{arg}"]
    return [VoiceRef(v, v) for v in names]


def _speaker_range(arg: str, model: tts_piper.PiperModel) -> range:
    n = model.num_speakers
    if not arg:
        return range(n)
    if n <= 1:
        raise BadValueError(f"piper voice {model.path} has one speaker; drop '#{arg}'")
    try:
        lo, _, hi = arg.partition("-")
        ids = range(int(lo), int(hi or lo) + 1)
    except ValueError as err:
        raise BadValueError(f"piper speaker range #{arg}: expected #N or #A-B") from err
    if not ids or ids[0] < 0 or ids[-1] >= n:
        raise BadValueError(f"piper speaker range #{arg}: {model.path} has speakers 0..{n - 1}")
    return ids


def _piper(arg: str) -> list[VoiceRef]:
    where, _, speakers = arg.partition("#")
    models = tts_piper.resolve_models(where)
    names = [m.name for m in models]
    if len(set(names)) < len(names):
        raise BadValueError(f"piper:{arg}: two voice files share a name: {sorted(names)}")
    out = []
    for m in models:
        if m.num_speakers <= 1 and not speakers:
            out.append(VoiceRef(f"piper:{m.name}", f"piper:{m.name}", m.path, m.config))
            continue
        for sid in _speaker_range(speakers, m):
            v = f"piper:{m.name}#{sid}"
            out.append(VoiceRef(v, v, m.path, m.config))
    return out


def backend_voices(backend: str, arg: str = "") -> list[VoiceRef]:
    """The voices of `backend:arg`; a missing backend is an error naming its install command."""
    if backend == "espeak":
        return _espeak(arg)
    if backend == "flite":
        return _program("flite", arg, flite_voices())
    if backend == "festival":
        return _program("festival", arg, festival_voices())
    if backend == "piper":
        return _piper(arg)
    raise BadValueError(f"unknown TTS backend {backend!r}; expected one of {list(BACKENDS)}")


def _weight(item: str) -> tuple[str, float]:
    body, sep, tail = item.rpartition("=")
    if not sep:
        return item, 1.0
    try:
        w = float(tail)
    except ValueError as err:
        raise BadValueError(f"--tts {item}: weight {tail!r} is not a number") from err
    if not w > 0:
        raise BadValueError(f"--tts {item}: weight must be > 0")
    return body, w


def parse_tts(spec: str | None) -> list[Entry]:
    """The entries of a `--tts` specification (see the module docstring)."""
    items = [s.strip() for s in (spec or "auto").split(",") if s.strip()]
    if not items:
        raise BadValueError("--tts is empty")
    if "auto" in items:
        if items != ["auto"]:
            raise BadValueError(f"--tts {spec}: auto stands alone (it is {DEFAULT_TTS})")
        items = DEFAULT_TTS.split(",")
    entries, seen = [], set()
    for item in items:
        body, weight = _weight(item)
        if body in seen:
            raise BadValueError(f"--tts names {body!r} twice")
        seen.add(body)
        backend, _, arg = body.partition(":")
        voices = backend_voices(backend.strip(), arg.strip())
        if not voices:
            raise BadValueError(f"--tts {item}: no voices")
        entries.append(Entry(item, weight, tuple(voices)))
    return entries


def piper_models(entries: list[Entry]) -> dict[str, dict[str, str]]:
    """Piper model files used by `entries`: name -> path and sha256 (for `dataset.json`)."""
    out: dict[str, dict[str, str]] = {}
    for e in entries:
        for v in e.voices:
            name = v.voice.split(":", 1)[1].split("#")[0]
            if v.backend != "piper":
                continue
            if name in out and out[name]["path"] != v.model:
                raise BadValueError(
                    f"two Piper voice files are both named {name!r}: {out[name]['path']} and "
                    f"{v.model}; rename one"
                )
            if name not in out:
                out[name] = {"path": v.model, "sha256": tts_piper.file_digest(v.model)}
    return out
