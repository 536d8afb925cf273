"""SoundFont event classes for `synth-events`: FSD50K-style labels played from General MIDI presets.

`SF_CLASSES` is fixed (its order gives the mids `/synth/sf/<nnn>`): ten melodic instruments
by GM program (bank 0, programs counted from 0), then six GM percussion sounds by drum-map key
(bank 128 program 0). A melodic event is a phrase of 1-4 notes (0.15-0.8 s each, steps of up to a
fifth inside the instrument's comfortable key range, velocity 60-120); a drum event is 1-4 hits
0.1-0.5 s apart. Only classes the font can render are offered (`available_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distill.data.synth.dsp import SAMPLE_RATE
from distill.data.synth.soundfont import SoundFont, load_soundfont
from distill.errors import BadValueError


@dataclass(frozen=True)
class SFClass:
    """A General MIDI source: preset (bank, program) and key range (one key for a drum)."""

    bank: int
    program: int
    low: int
    high: int

    @property
    def drum(self) -> bool:
        return self.bank == 128


SF_CLASSES: dict[str, SFClass] = {
    "Piano": SFClass(0, 0, 48, 84),  # acoustic grand
    "Marimba": SFClass(0, 12, 53, 84),
    "Organ": SFClass(0, 19, 48, 79),  # church organ
    "Acoustic_guitar": SFClass(0, 24, 40, 76),  # nylon
    "Bass_guitar": SFClass(0, 33, 28, 55),  # finger bass
    "Violin": SFClass(0, 40, 55, 88),
    "Harp": SFClass(0, 46, 36, 91),
    "Trumpet": SFClass(0, 56, 55, 82),
    "Saxophone": SFClass(0, 65, 49, 80),  # alto
    "Flute": SFClass(0, 73, 60, 96),
    "Bass_drum": SFClass(128, 0, 36, 36),
    "Snare_drum": SFClass(128, 0, 38, 38),
    "Hi_hat": SFClass(128, 0, 42, 42),  # closed
    "Crash_cymbal": SFClass(128, 0, 49, 49),
    "Tambourine": SFClass(128, 0, 54, 54),
    "Cowbell": SFClass(128, 0, 56, 56),
}
VELOCITIES = (60, 120)  # events draw velocities in this range
STEPS = np.array([-7, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 7])


def available_classes(font: SoundFont) -> tuple[list[str], dict[str, str]]:
    """Classes of `SF_CLASSES` the font can play over their whole key and velocity range, in
    table order, and `{label: why}` for the others."""
    ok, skipped = [], {}
    for label, c in SF_CLASSES.items():
        try:
            missing = [
                k
                for k in range(c.low, c.high + 1)
                if not all(font.zones(c.bank, c.program, k, v) for v in VELOCITIES)
            ]
        except KeyError:
            skipped[label] = f"no preset bank {c.bank} program {c.program}"
            continue
        mid = (c.low + c.high) // 2
        if missing:
            skipped[label] = f"preset {c.bank}:{c.program} has no sample for keys {missing[:5]}"
        elif not np.any(font.render_note(c.bank, c.program, mid, 100, 0.3)):
            skipped[label] = f"preset {c.bank}:{c.program} renders silence"
        else:
            ok.append(label)
    return ok, skipped


def render_sf_event(font_path: str, label: str, rng: np.random.Generator) -> np.ndarray:
    """One event of SoundFont class `label` from the font at `font_path`, float32 16 kHz."""
    font, c = load_soundfont(font_path), SF_CLASSES[label]
    notes = []  # (onset seconds, key, velocity, seconds)
    key, at = int(rng.integers(c.low, c.high + 1)), 0.0
    for _ in range(int(rng.integers(1, 5))):
        seconds = 1.0 if c.drum else float(rng.uniform(0.15, 0.8))
        notes.append((at, key, int(rng.integers(VELOCITIES[0], VELOCITIES[1] + 1)), seconds))
        at += float(rng.uniform(0.1, 0.5)) if c.drum else seconds
        if not c.drum:  # next note a step away, turning back at the range's ends
            step = int(rng.choice(STEPS))
            key = int(
                np.clip(key + step if c.low <= key + step <= c.high else key - step, c.low, c.high)
            )
    parts = [
        (int(round(on * SAMPLE_RATE)), font.render_note(c.bank, c.program, k, v, s) * (v / 127))
        for on, k, v, s in notes
    ]
    out = np.zeros(max(on + len(x) for on, x in parts), np.float32)
    for on, x in parts:
        out[on : on + len(x)] += x
    if not np.any(out):
        raise BadValueError(f"{font_path}: {label} rendered silence for notes {notes}")
    return out
