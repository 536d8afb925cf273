"""Text to speech for the generators: eSpeak NG in-process (ctypes), Flite and Festival.

A voice is named `engine:name`, e.g. `espeak:en-us+f2` (accent `en-us`, variant `f2`),
`flite:slt` or `festival:kal_diphone` (Piper voices: `tts_piper`; the choice of voices:
`voices`). Synthesis is a pure function of (voice, text, rate, pitch, range, seed): eSpeak NG
keeps state between utterances (pitch flutter, filter memories), so the library is loaded afresh
for every utterance, which costs about 10 ms and makes every clip reproducible on its own.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from distill.data.synth.common import UnpronounceableError
from distill.data.synth.dsp import resample
from distill.data.synth.tts_festival import festival_voices
from distill.data.synth.tts_festival import synthesize as festival_synthesize
from distill.errors import BadValueError, UsageError
from distill.extras import require

#: English accents of eSpeak NG that read English words as English (en-Shaw is a script, not one).
ESPEAK_ACCENTS = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
)
#: Other eSpeak NG languages, used only for babble noise (unintelligible background talkers).
BABBLE_LANGUAGES = ("de", "fr", "es", "it", "nl", "sv", "pl", "pt", "ru", "hi", "tr", "fi")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_chunks: list[np.ndarray] = []


def _collect(wav, n, _events):  # noqa: ANN001 - ctypes callback signature
    if n > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0


_callback = _CALLBACK(_collect)


def _espeak_paths() -> tuple[str, str]:
    espeakng_loader = require("espeakng_loader", "synth", "the espeak TTS backend")
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


#: eSpeak NG variants whose samples differ between two runs with the same seed: never used.
UNREPRODUCIBLE_ESPEAK = ("Reed", "caleb")


@lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """Names of the voice variants bundled with eSpeak NG (e.g. m3, f2, klatt, whisper), less
    the `UNREPRODUCIBLE_ESPEAK` ones."""
    folder = Path(_espeak_paths()[1]) / "voices" / "!v"
    if not folder.is_dir():
        raise UsageError(f"eSpeak NG variant folder not found: {folder}")
    names = (p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)
    return tuple(sorted(n for n in names if n not in UNREPRODUCIBLE_ESPEAK))


def espeak_voices() -> list[str]:
    """Every English accent x variant combination of eSpeak NG, as `espeak:<accent>+<variant>`."""
    return [f"espeak:{a}+{v}" for a in ESPEAK_ACCENTS for v in espeak_variants()]


@lru_cache(maxsize=1)
def flite_voices() -> tuple[str, ...]:
    """Voices of the `flite` program, as `flite:<name>`; empty when flite is not installed.
    Limited-domain voices (`awb_time`: a talking clock) are left out: they cannot say words."""
    exe = shutil.which("flite")
    if exe is None:
        return ()
    out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=True).stdout
    names = out.split(":", 1)[-1].split()
    return tuple(f"flite:{n}" for n in names if n and not n.endswith("_time"))


def engine_report() -> dict[str, int | str]:
    """How many voices each program engine has installed (0 with a reason when absent)."""
    report: dict[str, int | str] = {"espeak": len(espeak_voices()), "flite": len(flite_voices())}
    if not flite_voices():
        report["flite"] = "0 (flite not installed)"
    report["festival"] = (
        len(festival_voices()) or "0 (festival or its English voices not installed)"
    )
    return report


def _espeak(voice: str, text: str, rate: int, pitch: int, range_: int, seed: int) -> np.ndarray:
    lib_path, data_path = _espeak_paths()
    lib = ctypes.CDLL(lib_path, mode=os.RTLD_LOCAL)
    try:
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if sr <= 0:
            raise RuntimeError(f"espeak_Initialize failed with data path {data_path}")
        lib.espeak_SetSynthCallback(_callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise BadValueError(f"eSpeak NG has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, range_), (_VOLUME, 60)):
            lib.espeak_SetParameter(param, int(value), 0)
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        raw = text.encode()
        _chunks.clear()
        err = lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r} with voice {voice!r}")
        pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    finally:
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)
    return resample(pcm.astype(np.float32) / 32768.0, sr)


def _flite(voice: str, text: str, rate: int, pitch: int) -> np.ndarray:
    exe = shutil.which("flite")
    if exe is None:
        raise UsageError("backend flite needs the flite program (apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        cmd = [exe, "-voice", voice, "-t", text, "-o", str(out)]
        cmd += ["--setf", f"duration_stretch={175.0 / rate:.3f}"]
        cmd += ["--setf", f"int_f0_target_mean={70 + 2 * pitch}"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not out.is_file():
            tail = " ".join(res.stderr.split()[-20:])
            raise BadValueError(f"flite:{voice} could not say {text!r}: {tail}")
        x, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), sr)


def synthesize(
    voice: str, text: str, rate: int = 175, pitch: int = 50, range_: int = 50, seed: int = 0
) -> np.ndarray:
    """`text` spoken by `voice` at `rate` words/min, `pitch` and `range_` (0-99), as float32
    16 kHz mono. Festival follows `rate` only; Piper voices go through `tts_piper`."""
    engine, _, name = voice.partition(":")
    if engine == "espeak":
        x = _espeak(name, text, rate, pitch, range_, seed)
    elif engine == "flite":
        x = _flite(name, text, rate, pitch)
    elif engine == "festival":
        x = festival_synthesize(name, text, rate)
    else:
        raise BadValueError(
            f"unknown TTS voice {voice!r}; expected espeak:<name>, flite:<name> or festival:<name>"
        )
    if len(x) == 0 or not np.any(x):
        raise UnpronounceableError(f"{voice}: {text!r}: no audio")
    return x
