"""Festival voices for the generators, driven through one `festival --pipe` process per worker.

Starting Festival costs about 0.6 s (it loads its lexicon), so each process keeps one running and
sends it Scheme: select the voice, set the duration stretch, synthesise, save a RIFF file, then
print a marker on stderr. Festival has no random parts: the same call gives the same file.
Rate is controlled (`Duration_Stretch`); pitch is not (the pitch augmentation covers it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from distill.data.synth.dsp import resample
from distill.errors import BadValueError, UsageError

INSTALL = "apt-get install festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts"
VOICE_ROOT = Path("/usr/share/festival/voices")
ENGLISH_DIRS = ("english", "us")
_MARK = "@@distill-done@@"
_proc: tuple[int, subprocess.Popen] | None = None


@lru_cache(maxsize=1)
def festival_voices() -> tuple[str, ...]:
    """English Festival voices installed, as `festival:<name>`; empty when festival is absent."""
    if shutil.which("festival") is None:
        return ()
    names = [
        p.name
        for d in ENGLISH_DIRS
        if (VOICE_ROOT / d).is_dir()
        for p in (VOICE_ROOT / d).iterdir()
    ]
    return tuple(f"festival:{n}" for n in sorted(names))


def _process() -> subprocess.Popen:
    global _proc
    if _proc is not None and _proc[0] == os.getpid() and _proc[1].poll() is None:
        return _proc[1]
    exe = shutil.which("festival")
    if exe is None:
        raise UsageError(f"backend festival needs the festival program ({INSTALL})")
    proc = subprocess.Popen(
        [exe, "--pipe"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    _proc = (os.getpid(), proc)
    return proc


def synthesize(voice: str, text: str, rate: int = 175) -> np.ndarray:
    """`text` spoken by Festival voice `voice` (e.g. `kal_diphone`) at `rate` (175 = the voice's
    own speed), as float32 16 kHz mono."""
    if f"festival:{voice}" not in festival_voices():
        if shutil.which("festival") is None:
            raise UsageError(f"backend festival needs the festival program ({INSTALL})")
        raise BadValueError(f"festival has no English voice {voice!r}; has {festival_voices()}")
    safe = text.replace("\\", " ").replace('"', " ")
    proc = _process()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        proc.stdin.write(
            f"(voice_{voice})(Parameter.set 'Duration_Stretch {175.0 / rate:.4f})"
            f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{out}" \'riff)'
            f'(format stderr "{_MARK}\\n")\n'
        )
        proc.stdin.flush()
        errors = []
        while True:
            line = proc.stderr.readline()
            if not line:
                raise UsageError(f"festival stopped while saying {text!r}: {' '.join(errors)}")
            if _MARK in line:
                break
            errors.append(line.strip())
        if any("error" in e.lower() for e in errors) or not out.is_file():
            raise BadValueError(f"festival:{voice} could not say {text!r}: {' '.join(errors)}")
        x, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), sr)
