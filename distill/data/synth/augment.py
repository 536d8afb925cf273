"""Voice-level augmentation of a spoken word, for every backend and for recordings.

`--augment` names the kinds (or `all`, `none`):

- `vtlp`: vocal-tract length: the spectral envelope (cepstrally smoothed, 32 ms frames) is
  stretched along frequency by alpha in [0.85, 1.18] while the harmonics stay (formants move,
  pitch does not);
- `pitch`: -4..+4 semitones (WSOLA time stretch, then resampling back to the same length);
- `tempo`: speed x0.85..1.2 without changing pitch (WSOLA);
- `room`: a room impulse response (simulated or measured, `rooms.py`) instead of the synthetic
  exponential reverb, in 80 % of clips;
- `mic`: a microphone/channel: flat, band-limited, telephone (300-3400 Hz, 8 kHz, mu-law),
  mu-law 8-bit, or a compressor with soft clipping.

Parameters are drawn from the clip's own generator (`draw`), recorded in the manifest as JSON,
and `apply_voice` / `apply_mic` are pure functions of them.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from distill.data.synth.dsp import SAMPLE_RATE, resample
from distill.errors import BadValueError

KINDS = ("vtlp", "pitch", "tempo", "room", "mic")
DEFAULT_AUGMENT = "all"  # of `distill data synth-kws` and `synth_kws` (docs/data.md)
MIC_KINDS = ("flat", "bandlimit", "telephone", "mulaw", "compress")
_MIC_P = (0.3, 0.25, 0.2, 0.1, 0.15)
_NFFT, _HOP, _LIFTER = 512, 128, 24


def parse_kinds(spec: str | None) -> tuple[str, ...]:
    """The kinds of `--augment` (comma-separated, `all` or `none`), in `KINDS` order."""
    items = {s.strip() for s in (spec or "none").split(",") if s.strip()}
    if items == {"none"} or not items:
        return ()
    if items == {"all"}:
        return KINDS
    bad = sorted(items - set(KINDS))
    if bad:
        raise BadValueError(f"--augment {spec}: unknown {bad}; expected all, none or {KINDS}")
    return tuple(k for k in KINDS if k in items)


def draw(kinds: tuple[str, ...], rng: np.random.Generator) -> dict[str, object]:
    """Random parameters for the `kinds` of one clip (every kind draws, so adding one kind does
    not change the others' values)."""
    values = {
        "vtlp": round(float(rng.uniform(0.85, 1.18)), 4),
        "pitch": round(float(rng.uniform(-4.0, 4.0)), 3),
        "tempo": round(float(rng.uniform(0.85, 1.2)), 4),
        "room": bool(rng.random() < 0.8),
        "mic": _draw_mic(rng),
    }
    return {k: values[k] for k in kinds}


def _draw_mic(rng: np.random.Generator) -> dict[str, object]:
    kind = str(rng.choice(MIC_KINDS, p=_MIC_P))
    lo, hi = float(rng.uniform(60, 300)), float(rng.uniform(3000, 7500))
    thr, ratio, drive = float(rng.uniform(-30, -10)), float(rng.uniform(2, 8)), rng.uniform(1, 4)
    params = {
        "flat": {},
        "bandlimit": {"lo": round(lo), "hi": round(hi)},
        "telephone": {},
        "mulaw": {},
        "compress": {"threshold_db": round(thr, 1), "ratio": round(ratio, 2)}
        | {"drive": round(float(drive), 2)},
    }[kind]
    return {"kind": kind, **params}


def _stft(x: np.ndarray) -> np.ndarray:
    return signal.stft(x, nperseg=_NFFT, noverlap=_NFFT - _HOP, boundary="even", padded=True)[2]


def _istft(z: np.ndarray, n: int) -> np.ndarray:
    y = signal.istft(z, nperseg=_NFFT, noverlap=_NFFT - _HOP, boundary=True)[1]
    return np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)


def formant_warp(x: np.ndarray, alpha: float) -> np.ndarray:
    """`x` with its spectral envelope stretched by `alpha` along frequency (>1: formants up)."""
    if alpha == 1.0 or len(x) < _NFFT:
        return x.astype(np.float32)
    z = _stft(x.astype(np.float64))
    log_mag = np.log(np.abs(z) + 1e-9)
    cep = np.fft.irfft(log_mag, axis=0)
    cep[_LIFTER:-_LIFTER] = 0.0
    env = np.fft.rfft(cep, axis=0).real[: z.shape[0]]
    bins = np.arange(z.shape[0], dtype=np.float64)
    warped = np.stack([np.interp(bins / alpha, bins, env[:, t]) for t in range(z.shape[1])], 1)
    return _istft(z * np.exp(warped - env), len(x))


def time_stretch(x: np.ndarray, rate: float) -> np.ndarray:
    """`x` played `rate` times faster without a pitch change (WSOLA, 30 ms frames)."""
    if rate == 1.0 or len(x) < 1024:
        return x.astype(np.float32)
    n, hs, delta = 480, 240, 160
    win = np.hanning(n)
    ha = hs * rate
    frames = int(np.ceil(len(x) / ha)) + 2
    xp = np.pad(x.astype(np.float64), (delta, int(frames * ha) + n + 2 * delta))
    out = np.zeros(frames * hs + n)
    norm = np.zeros_like(out)
    prev = delta  # position in xp of the previous frame
    for k in range(frames):
        centre = int(round(k * ha)) + delta
        if k == 0:
            pos = centre
        else:
            target = xp[prev + hs : prev + hs + n]
            cand = xp[centre - delta : centre + delta + n]
            corr = np.correlate(cand, target, mode="valid")
            pos = centre - delta + int(np.argmax(corr))
        out[k * hs : k * hs + n] += xp[pos : pos + n] * win
        norm[k * hs : k * hs + n] += win
        prev = pos
    y = out / np.maximum(norm, 1e-3)
    return y[: int(round(len(x) / rate))].astype(np.float32)


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """`x` shifted by `semitones` at the same length (time stretch, then resampling)."""
    if semitones == 0.0:
        return x.astype(np.float32)
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(64)
    longer = time_stretch(x, 1 / float(ratio))
    y = signal.resample_poly(longer, ratio.denominator, ratio.numerator)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def apply_voice(x: np.ndarray, params: dict[str, object]) -> np.ndarray:
    """The dry speech `x` with the voice kinds of `params` (vtlp, pitch, tempo)."""
    if "vtlp" in params:
        x = formant_warp(x, float(params["vtlp"]))
    if "pitch" in params:
        x = pitch_shift(x, float(params["pitch"]))
    if "tempo" in params:
        x = time_stretch(x, float(params["tempo"]))
    return x.astype(np.float32)


def mu_law(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """`x` through mu-law companding quantised to `bits` bits."""
    mu = 2**bits - 1
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu).astype(np.float32)


def _compress(x: np.ndarray, thr_db: float, ratio: float, drive: float) -> np.ndarray:
    peak = float(np.max(np.abs(x))) or 1.0
    y = x / peak
    env = signal.lfilter([0.01], [1, -0.99], np.abs(y))  # ~6 ms follower
    level = 20 * np.log10(np.maximum(env, 1e-6))
    gain_db = np.minimum(0.0, (thr_db - level) * (1 - 1 / ratio))
    y = y * 10 ** (gain_db / 20)
    y = np.tanh(drive * y / (np.max(np.abs(y)) + 1e-9)) / np.tanh(drive)
    return (y * peak).astype(np.float32)


def apply_mic(x: np.ndarray, mic: dict[str, object], sr: int = SAMPLE_RATE) -> np.ndarray:
    """`x` through the microphone/channel `mic` (a `draw` result's `mic`)."""
    kind = mic["kind"]
    if kind == "flat":
        return x.astype(np.float32)
    if kind == "bandlimit":
        band = [float(mic["lo"]), float(mic["hi"])]
        sos = signal.butter(4, band, btype="bandpass", fs=sr, output="sos")
        return signal.sosfilt(sos, x).astype(np.float32)
    if kind == "telephone":
        sos = signal.butter(4, [300, 3400], btype="bandpass", fs=sr, output="sos")
        narrow = resample(signal.sosfilt(sos, x).astype(np.float32), sr, 8000)
        return resample(mu_law(narrow), 8000, sr)[: len(x)]
    if kind == "mulaw":
        return mu_law(x)
    if kind == "compress":
        return _compress(x, float(mic["threshold_db"]), float(mic["ratio"]), float(mic["drive"]))
    raise BadValueError(f"unknown mic kind {kind!r}; expected one of {MIC_KINDS}")
