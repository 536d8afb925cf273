"""Sound-event classes for `synth-events`: each draws one event with randomised parameters.

Every generator takes a numpy Generator and returns a float32 16 kHz waveform (any level; the
mixer sets it). `EVENT_CLASSES` maps the FSD50K-style label to its generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from distill.data.synth.dsp import SAMPLE_RATE, coloured_noise
from distill.data.synth.tts import ESPEAK_ACCENTS, espeak_variants, synthesize
from distill.data.synth.words import BABBLE_WORDS

SR = SAMPLE_RATE
Gen = np.random.Generator


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _decay(t: np.ndarray, tau: float, attack: float = 0.005) -> np.ndarray:
    return np.minimum(1.0, t / attack) * np.exp(-t / tau)


def _band(x: np.ndarray, lo: float, hi: float, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, [lo, min(hi, SR / 2 - 100)], "bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, x)


def _gate(t: np.ndarray, period: float, duty: float) -> np.ndarray:
    return ((t % period) < duty * period).astype(np.float64)


def tone(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.3, 1.5))
    return np.sin(2 * np.pi * rng.uniform(200, 3000) * t) * np.minimum(1, t / 0.02)


def chirp_up(rng: Gen) -> np.ndarray:
    d = rng.uniform(0.2, 1.2)
    f0 = rng.uniform(150, 1000)
    return signal.chirp(_t(d), f0, d, f0 * rng.uniform(2, 6), method="logarithmic")


def chirp_down(rng: Gen) -> np.ndarray:
    return chirp_up(rng)[::-1].copy()


def siren(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.0, 3.0))
    lo, hi, rate = rng.uniform(500, 800), rng.uniform(1000, 1600), rng.uniform(0.3, 3.0)
    f = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def click_train(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.5, 2.5))
    x = np.zeros(len(t))
    x[:: int(rng.uniform(0.08, 0.5) * SR)] = 1.0
    click = np.exp(-_t(0.01) / 0.001) * np.sin(2 * np.pi * rng.uniform(2000, 6000) * _t(0.01))
    return np.convolve(x, click)[: len(t)]


def noise_burst(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.05, 0.6))
    return coloured_noise(len(t), str(rng.choice(["white", "pink"])), rng) * _decay(t, 0.15)


def dog_bark(rng: Gen) -> np.ndarray:
    out = []
    for _ in range(int(rng.integers(1, 4))):
        t = _t(rng.uniform(0.12, 0.25))
        f0 = rng.uniform(250, 600) * np.exp(-t * 3)
        src = signal.sawtooth(2 * np.pi * np.cumsum(f0) / SR) + 0.3 * rng.standard_normal(len(t))
        voiced = sum(_band(src, f * 0.8, f * 1.2) for f in (rng.uniform(500, 900), 1600, 2600))
        out += [
            voiced * np.abs(np.sin(np.pi * t / t[-1])) ** 0.5,
            np.zeros(int(rng.uniform(0.1, 0.3) * SR)),
        ]
    return np.concatenate(out)


def footsteps(rng: Gen) -> np.ndarray:
    step = rng.uniform(0.35, 0.7)
    t = _t(step * int(rng.integers(3, 7)))
    x = np.zeros(len(t))
    x[:: int(step * SR)] = 1.0
    thud = _band(rng.standard_normal(int(0.08 * SR)), 60, rng.uniform(300, 1500)) * _decay(
        _t(0.08), 0.02
    )
    return np.convolve(x, thud)[: len(t)]


def bell(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.0, 3.0))
    f0 = rng.uniform(300, 1200)
    ratios = (0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66, 3.01)
    return sum(
        np.sin(2 * np.pi * f0 * r * rng.uniform(0.99, 1.01) * t) * _decay(t, 1.2 / r) / (1 + i)
        for i, r in enumerate(ratios)
    )


def engine_hum(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.5, 3.5))
    f = rng.uniform(25, 80) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 10))
    return x + 0.3 * _band(rng.standard_normal(len(t)), 50, 400)


def water(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.0, 3.0))
    x = _band(rng.standard_normal(len(t)), rng.uniform(300, 800), rng.uniform(2000, 5000))
    for _ in range(int(rng.integers(5, 30))):  # bubbles: short rising sines
        d, at = rng.uniform(0.01, 0.04), int(rng.uniform(0, len(t) - 0.05 * SR))
        tb = _t(d)
        bub = np.sin(2 * np.pi * rng.uniform(400, 1500) * (1 + 3 * tb) * tb) * _decay(tb, d / 3)
        x[at : at + len(tb)] += 2 * bub
    return x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))


def alarm_beep(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.8, 2.5))
    f = rng.uniform(1500, 4000)
    return np.sign(np.sin(2 * np.pi * f * t)) * 0.5 * _gate(t, rng.uniform(0.15, 0.5), 0.5)


def knock(rng: Gen) -> np.ndarray:
    step, n = int(rng.uniform(0.12, 0.25) * SR), int(rng.integers(2, 5))
    x = np.zeros(step * n + int(0.1 * SR))
    x[: step * n : step] = 1.0
    hit = np.sin(2 * np.pi * rng.uniform(120, 300) * _t(0.06)) * _decay(_t(0.06), 0.012)
    hit += 0.3 * _band(rng.standard_normal(len(hit)), 500, 3000) * _decay(_t(0.06), 0.004)
    return np.convolve(x, hit)[: len(x)]


def whistle(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.3, 1.5))
    f = rng.uniform(1000, 3000) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 8) * t))
    x = np.sin(2 * np.pi * np.cumsum(f) / SR) + 0.05 * rng.standard_normal(len(t))
    return x * np.abs(np.sin(np.pi * t / t[-1])) ** 0.3


def buzzer(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.3, 1.5))
    return signal.square(2 * np.pi * rng.uniform(100, 400) * t) * 0.5


def drum(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.2, 0.6))
    f = rng.uniform(45, 90) + rng.uniform(50, 150) * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * _decay(t, rng.uniform(0.08, 0.25), 0.001)


def hand_clap(rng: Gen) -> np.ndarray:
    gap = rng.uniform(0.2, 0.5)
    n = int(rng.integers(1, 6))
    x = np.zeros(int((gap * n + 0.1) * SR))
    burst = _band(rng.standard_normal(int(0.05 * SR)), 800, 3000) * _decay(_t(0.05), 0.008)
    for i in range(n):
        at = int(i * gap * SR)
        x[at : at + len(burst)] += burst
    return x


def glass_chime(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.4, 1.5))
    f0 = rng.uniform(2000, 4500)
    return sum(np.sin(2 * np.pi * f0 * r * t) * _decay(t, 0.3 / r) for r in (1.0, 2.32, 4.25))


def wind(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.5, 3.5))
    x = _band(coloured_noise(len(t), "pink", rng), 100, rng.uniform(600, 2000))
    gust = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 6))
    return x * gust * np.sin(np.pi * t / t[-1])


def bird_chirp(rng: Gen) -> np.ndarray:
    out = []
    for _ in range(int(rng.integers(2, 7))):
        t = _t(rng.uniform(0.04, 0.12))
        f = rng.uniform(2500, 5000) + rng.uniform(-1500, 1500) * t / t[-1]
        out += [np.sin(2 * np.pi * np.cumsum(f) / SR) * np.sin(np.pi * t / t[-1])]
        out += [np.zeros(int(rng.uniform(0.03, 0.15) * SR))]
    return np.concatenate(out)


def phone_ring(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(1.0, 3.0))
    f1, f2 = (440.0, 480.0) if rng.random() < 0.5 else (rng.uniform(700, 1000), 1209.0)
    x = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)
    return x * _gate(t, rng.uniform(0.6, 1.2), 0.5) * (0.7 + 0.3 * _gate(t, 0.05, 0.5))


def drill(rng: Gen) -> np.ndarray:
    t = _t(rng.uniform(0.8, 2.5))
    f = rng.uniform(150, 400) * (1 + 0.03 * rng.standard_normal(len(t)).cumsum() / SR)
    x = signal.sawtooth(2 * np.pi * np.cumsum(f) / SR)
    return x + 0.4 * _band(rng.standard_normal(len(t)), 2000, 6000)


def speech(rng: Gen) -> np.ndarray:
    voice = f"espeak:{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(espeak_variants())}"
    words = " ".join(rng.choice(BABBLE_WORDS, size=int(rng.integers(1, 6))))
    rate, pitch = int(rng.integers(130, 230)), int(rng.integers(15, 85))
    return synthesize(
        voice, words, rate, pitch, int(rng.integers(10, 90)), int(rng.integers(2**31))
    )


def speech_with(voices: tuple, rng: Gen) -> np.ndarray:
    """A `Speech` event in one of `voices` (`voices.VoiceRef`s of `--tts`) at a random rate."""
    from distill.data.synth.speakers import Speaker, draw_tts_params, speak

    ref = voices[int(rng.integers(len(voices)))]
    words = " ".join(rng.choice(BABBLE_WORDS, size=int(rng.integers(1, 6))))
    rate, pitch = int(rng.integers(150, 206)), int(rng.integers(15, 85))
    range_ = int(rng.integers(10, 90))
    spk = Speaker("", ref.voice, rate, pitch, range_, "", ref.group, ref.model, ref.config)
    params = draw_tts_params(spk, rng)
    return speak(spk, words, rate, pitch, int(rng.integers(2**31)), params)


EVENT_CLASSES: dict[str, Callable[[Gen], np.ndarray]] = {
    "Alarm_beep": alarm_beep,
    "Bell": bell,
    "Bird_chirp": bird_chirp,
    "Buzzer": buzzer,
    "Chirp_down": chirp_down,
    "Chirp_up": chirp_up,
    "Click_train": click_train,
    "Dog_bark": dog_bark,
    "Drill": drill,
    "Drum": drum,
    "Engine_hum": engine_hum,
    "Footsteps": footsteps,
    "Glass_chime": glass_chime,
    "Hand_clap": hand_clap,
    "Knock": knock,
    "Noise_burst": noise_burst,
    "Phone_ring": phone_ring,
    "Siren": siren,
    "Speech": speech,
    "Tone": tone,
    "Water": water,
    "Whistle": whistle,
    "Wind": wind,
}
