"""The TTS engines: eSpeak NG in-process (always), Flite when the Debian program is installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from distill.data.synth.tts import engine_report, flite_voices, synthesize

needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite not installed (apt-get install -y flite)"
)


def test_espeak_speaks_and_rate_changes_duration() -> None:
    normal = synthesize("espeak:en-us", "seven", rate=175)
    slow = synthesize("espeak:en-us", "seven", rate=90)
    assert normal.dtype == np.float32 and 0.01 < np.abs(normal).max() <= 1.0
    assert len(slow) > 1.3 * len(normal)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown TTS voice 'say:alex'"):
        synthesize("say:alex", "yes")


@needs_flite
def test_flite_voices_speak_and_follow_rate_and_pitch() -> None:
    voices = flite_voices()
    assert "flite:slt" in voices and not any(v.endswith("_time") for v in voices)
    assert engine_report()["flite"] == len(voices)
    normal = synthesize("flite:slt", "yes", rate=175)
    slow = synthesize("flite:slt", "yes", rate=100)
    assert len(slow) > 1.4 * len(normal)
    assert 0.01 < np.abs(normal).max() <= 1.0
    low, high = (dominant_f0(synthesize("flite:kal", "yes", pitch=p)) for p in (10, 90))
    assert high > 1.15 * low


def dominant_f0(x: np.ndarray) -> float:
    """The strongest spectral peak between 60 and 400 Hz (the voice's fundamental region)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / 16000)
    band = (freqs > 60) & (freqs < 400)
    return float(freqs[band][spectrum[band].argmax()])
