"""Rendering one clip of the keyword bank: speech (TTS or a recorded take), placement, EQ, room
or reverb, microphone, level. Every clip is a pure function of the seed and its indices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data.synth import augment, common
from distill.data.synth.augment import apply_voice, time_stretch
from distill.data.synth.common import UnpronounceableError
from distill.data.synth.dsp import (
    SAMPLE_RATE,
    active_span,
    peak_normalise,
    random_eq,
    random_reverb,
    write_wav,
)
from distill.data.synth.recordings import load_take
from distill.data.synth.rooms import FOLDER as ROOM_FOLDER
from distill.data.synth.rooms import apply_room, load_rir
from distill.data.synth.speakers import PITCHED, Speaker, draw_tts_params, speak

MANIFEST_COLUMNS = ("path", "label", "speaker", "split", "onset", "offset")
MANIFEST_COLUMNS += ("voice", "rate", "pitch", "gain_db")
MANIFEST_COLUMNS += ("backend", "tts_speaker", "tts_params", "augment", "source")
CLIP = SAMPLE_RATE  # exactly 1.0 s
MARGIN = int(0.02 * SAMPLE_RATE)  # least silence before and after the speech
MAX_SPEEDUP = 1.6  # a phrase too long for 1 s is re-spoken at most this much faster
MAX_RATE = 450  # eSpeak NG's highest words-per-minute setting
TTS_STREAM, RECORDING_STREAM, AUGMENT_STREAM = 2, 10, 9


@dataclass(frozen=True)
class ClipTask:
    """One keyword clip to render into `root` (from TTS, or from the recorded `take`)."""

    root: str
    label: str
    text: str
    speaker: Speaker
    k: int
    seed: int
    word_index: int
    clip_index: int
    augment: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()  # room files (under `root/_rooms`) this clip may use
    take: str = ""  # a recording's path; empty for TTS

    @property
    def path(self) -> str:
        return f"{self.label}/{self.speaker.id}_nohash_{self.k}.wav"


def _speak_fitting(
    task: ClipTask, rng: np.random.Generator, aug: dict
) -> tuple[np.ndarray, int, int, bool, dict]:
    """Trimmed speech no longer than the clip allows, its rate, pitch, whether it was sped up and
    the engine settings; an empty array when even the fastest allowed rate does not fit."""
    spk = task.speaker
    rate = int(np.clip(spk.rate * rng.uniform(0.88, 1.12), 80, MAX_RATE))
    pitch = int(np.clip(spk.pitch + rng.integers(-6, 7), 0, 99))
    text = task.text + str(rng.choice(["", ".", "!", "?"]))
    tts_seed = int(rng.integers(2**31))
    params = draw_tts_params(spk, rng)
    limit, fastest = CLIP - 2 * MARGIN, min(MAX_RATE, int(rate * MAX_SPEEDUP))
    sped_up = False
    while True:
        x = speak(spk, text, rate, pitch, tts_seed, params)
        x = apply_voice(x, aug) if aug else x
        start, end = active_span(x, threshold_db=-55.0, frame=80)
        speech = x[start:end]
        if len(speech) <= limit:
            return speech, rate, pitch, sped_up, params
        if rate >= fastest:
            return np.zeros(0, np.float32), rate, pitch, sped_up, params
        rate, sped_up = min(fastest, int(np.ceil(rate * len(speech) / limit * 1.05))), True


def _recorded(task: ClipTask, aug: dict) -> tuple[np.ndarray, bool]:
    """A take's speech (augmented), sped up (WSOLA, at most MAX_SPEEDUP) to fit; empty if not."""
    x = load_take(task.take)
    x = apply_voice(x, aug) if aug else x
    limit = CLIP - 2 * MARGIN
    if len(x) <= limit:
        return x, False
    if len(x) > limit * MAX_SPEEDUP:
        return np.zeros(0, np.float32), False
    return time_stretch(x, len(x) / limit * 1.01)[:limit], True


def _speech(task: ClipTask, rng: np.random.Generator, aug: dict) -> dict[str, object]:
    """The dry speech of a task and its manifest fields (or the reason it has none)."""
    spk = task.speaker
    if task.take:
        speech, sped_up = _recorded(task, aug)
        return {"x": speech, "rate": "", "pitch": "", "sped_up": sped_up, "tts_params": {}}
    try:
        speech, rate, pitch, sped_up, params = _speak_fitting(task, rng, aug)
    except UnpronounceableError as err:
        return {"unpronounceable": task.label, "voice": spk.voice, "why": str(err)}
    pitch_field = pitch if spk.backend in PITCHED else ""
    return {
        "x": speech,
        "rate": rate,
        "pitch": pitch_field,
        "sped_up": sped_up,
        "tts_params": params,
    }


def _room(task: ClipTask, clip: np.ndarray, aug: dict, rng: np.random.Generator) -> np.ndarray:
    """The clip in a room of the bank (`aug['room']` becomes the file or False)."""
    if not aug["room"] or not task.rooms:
        aug["room"] = False
        return clip
    name = task.rooms[int(rng.integers(len(task.rooms)))]
    aug["room"] = name
    return apply_room(clip, load_rir(str(Path(task.root) / ROOM_FOLDER / name)))


def render_clip(task: ClipTask) -> dict[str, object]:
    """Render and write one clip; returns its manifest row, or {'skipped': label} if too long,
    or {'unpronounceable': label, ...} when its backend cannot say it."""
    stream = RECORDING_STREAM if task.take else TTS_STREAM
    rng = common.rng_for(task.seed, stream, task.word_index, task.clip_index)
    aug_rng = common.rng_for(task.seed, AUGMENT_STREAM, stream, task.word_index, task.clip_index)
    aug = augment.draw(task.augment, aug_rng) if task.augment else {}
    got = _speech(task, rng, aug)
    if "unpronounceable" in got:
        return got
    speech = got["x"]
    if len(speech) == 0:
        return {"skipped": task.label}
    start = int(rng.integers(MARGIN, CLIP - MARGIN - len(speech) + 1))
    clip = np.zeros(CLIP, np.float32)
    clip[start : start + len(speech)] = speech
    on, off = active_span(speech, threshold_db=-35.0, frame=80)
    clip, _eq = random_eq(clip, rng)
    if "room" in aug:
        clip = _room(task, clip, aug, aug_rng)
    else:
        clip, _rt60 = random_reverb(clip, rng)
    if "mic" in aug:
        clip = augment.apply_mic(clip, aug["mic"])
    gain_db = float(rng.uniform(-20.0, -1.0))
    clip = peak_normalise(clip, gain_db)
    clip += rng.standard_normal(CLIP).astype(np.float32) * 10 ** (rng.uniform(-85, -70) / 20)
    write_wav(Path(task.root) / task.path, clip)
    spk = task.speaker
    return {
        "path": task.path,
        "label": task.label,
        "speaker": spk.id,
        "split": spk.split,
        "onset": f"{(start + on) / SAMPLE_RATE:.4f}",
        "offset": f"{(start + off) / SAMPLE_RATE:.4f}",
        "voice": spk.voice,
        "rate": got["rate"],
        "pitch": got["pitch"],
        "gain_db": f"{gain_db:.2f}",
        "backend": spk.backend,
        "tts_speaker": spk.voice.split("#", 1)[1] if "#" in spk.voice else "",
        "tts_params": json.dumps(got["tts_params"], sort_keys=True) if got["tts_params"] else "",
        "augment": json.dumps(aug, sort_keys=True) if aug else "",
        "source": task.take,
        "sped_up": got["sped_up"],
    }
