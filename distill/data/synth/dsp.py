"""Signal helpers for the synthetic data generators: resampling, EQ, reverb, noise, I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from distill.errors import BadValueError

SAMPLE_RATE = 16000


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """`x` resampled from `sr_in` to `sr_out` Hz (polyphase, anti-aliased), as float32."""
    if sr_in == sr_out:
        return x.astype(np.float32)
    g = np.gcd(int(sr_in), int(sr_out))
    return signal.resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def _biquad(kind: str, f0: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, ...]:
    """RBJ audio-EQ-cookbook biquad coefficients (b, a) for a shelf or peaking filter."""
    a_lin = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a_lin, -2 * cw, 1 - alpha * a_lin]
        a = [1 + alpha / a_lin, -2 * cw, 1 - alpha / a_lin]
    elif kind in ("lowshelf", "highshelf"):
        s = 1 if kind == "lowshelf" else -1
        sq = 2 * np.sqrt(a_lin) * alpha
        b = [
            a_lin * ((a_lin + 1) - s * (a_lin - 1) * cw + sq),
            s * 2 * a_lin * ((a_lin - 1) - s * (a_lin + 1) * cw),
            a_lin * ((a_lin + 1) - s * (a_lin - 1) * cw - sq),
        ]
        a = [
            (a_lin + 1) + s * (a_lin - 1) * cw + sq,
            -s * 2 * ((a_lin - 1) + s * (a_lin + 1) * cw),
            (a_lin + 1) + s * (a_lin - 1) * cw - sq,
        ]
    else:
        raise BadValueError(f"unknown biquad kind {kind!r}; expected peak, lowshelf or highshelf")
    return np.asarray(b) / a[0], np.asarray(a) / a[0]


def random_eq(
    x: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, str]:
    """`x` through a random EQ (none, low/high shelf, band-pass or peak); returns its name."""
    kind = rng.choice(["none", "lowshelf", "highshelf", "bandpass", "peak"])
    if kind == "none":
        return x, "none"
    if kind == "bandpass":
        lo, hi = rng.uniform(80, 400), rng.uniform(3000, 7500)
        sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
        return signal.sosfilt(sos, x).astype(np.float32), f"bandpass{lo:.0f}-{hi:.0f}"
    f0 = {"lowshelf": rng.uniform(100, 500), "highshelf": rng.uniform(2000, 6000)}.get(
        str(kind), rng.uniform(300, 4000)
    )
    gain = rng.uniform(-12, 9)
    b, a = _biquad(str(kind), f0, gain, 0.707 if kind != "peak" else rng.uniform(0.5, 3), sr)
    return signal.lfilter(b, a, x).astype(np.float32), f"{kind}{f0:.0f}{gain:+.0f}dB"


def random_reverb(
    x: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, float]:
    """`x` convolved with a synthetic exponentially decaying impulse response; returns its RT60.

    With probability 0.3 the signal is left dry (RT60 0). The output keeps the input length.
    """
    if rng.random() < 0.3:
        return x, 0.0
    rt60 = float(rng.uniform(0.1, 0.8))
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    ir[: int(0.002 * sr)] = 0.0
    ir *= 10 ** (rng.uniform(-18, -6) / 20) / (np.sqrt(np.sum(ir**2)) + 1e-12)
    ir[0] = 1.0
    y = signal.fftconvolve(x, ir)[: len(x)]
    return y.astype(np.float32), rt60


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-RMS noise with spectrum 1/f^k: white k=0, pink 1, brown 2, blue -1."""
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}
    if colour not in exponents:
        raise BadValueError(f"unknown noise colour {colour!r}; expected one of {sorted(exponents)}")
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponents[colour] / 2)
    y = np.fft.irfft(spec, n)
    y -= y.mean()
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


def active_span(x: np.ndarray, threshold_db: float = -35.0, frame: int = 160) -> tuple[int, int]:
    """First and one-past-last sample of the frames whose RMS is within `threshold_db` of the
    loudest frame; (0, 0) for an all-silent signal."""
    n = len(x) // frame
    if n == 0:
        return 0, 0
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    peak = rms.max()
    if not np.isfinite(peak):
        raise BadValueError("active_span: signal contains NaN or infinity")
    if peak <= 0:
        return 0, 0
    idx = np.flatnonzero(rms >= peak * 10 ** (threshold_db / 20))
    return int(idx[0] * frame), int(min(len(x), (idx[-1] + 1) * frame))


def peak_normalise(x: np.ndarray, peak_db: float) -> np.ndarray:
    """`x` scaled so that its absolute peak is `peak_db` dBFS."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0:
        return x.astype(np.float32)
    return (x * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write `x` (float in [-1, 1]) as mono 16-bit PCM; values outside are an error, not clipped."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if not np.isfinite(peak) or peak > 1.0:
        raise BadValueError(f"{path}: signal peak {peak} outside [-1, 1]; refusing to clip")
    pcm = np.round(np.asarray(x, dtype=np.float64) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm, sr, subtype="PCM_16")
