"""Speakers of a keyword bank: voice configurations drawn from the `--tts` entries, split by voice.

Speakers are shared between the entries in proportion to their weights. Inside an entry every
voice *group* (`voices.VoiceRef.group`) is given one split first (~10 % validation, ~10 % test,
at least one each when the entry has 3 or more groups; all train otherwise), then each speaker
is given a split (~80/10/10) and a voice of that split, so no voice is heard in two splits. A
speaker of a multi-speaker Piper model is, with probability `piper_mix`, a blend of two speakers
of its split (`#a+b@w`). Rate, pitch and pitch range are drawn per speaker; Piper and Festival
follow the rate only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from distill.data.synth import common, tts_piper
from distill.data.synth.tts import synthesize
from distill.data.synth.voices import Entry, VoiceRef, parse_tts
from distill.errors import BadValueError

SPLITS = ("train", "validation", "test")
#: Speaker rate ranges (words/min; 175 is the engine's own speed for Festival and Piper).
RATES = {"espeak": (100, 191), "flite": (100, 191), "festival": (145, 206), "piper": (150, 206)}
#: Backends whose `pitch` setting changes the voice (others record an empty pitch).
PITCHED = ("espeak", "flite")


@dataclass(frozen=True)
class Speaker:
    """One voice configuration; all of its clips land in the same split."""

    id: str
    voice: str
    rate: int
    pitch: int
    range_: int
    split: str
    group: str = ""
    model: str = ""
    config: str = ""

    @property
    def backend(self) -> str:
        return self.voice.split(":", 1)[0]


def _held(n: int) -> int:
    return max(1, round(0.1 * n)) if n >= 3 else 0


def _assign(n: int, rng: np.random.Generator) -> list[str]:
    """Splits of `n` items: ~10 % validation, ~10 % test (none when n < 3), the rest train."""
    order, held = rng.permutation(n), _held(n)
    split = {int(i): "validation" for i in order[:held]}
    split.update({int(i): "test" for i in order[held : 2 * held]})
    return [split.get(i, "train") for i in range(n)]


def allot(n: int, entries: list[Entry]) -> list[int]:
    """Speakers per entry in proportion to the weights (largest remainder); none may get 0."""
    total = sum(e.weight for e in entries)
    exact = [n * e.weight / total for e in entries]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    for e, c in zip(entries, counts):
        if c == 0:
            raise BadValueError(f"--tts {e.spec}: gets no speaker of {n}; raise --speakers")
    return counts


def _mix(v: VoiceRef, pool: list[VoiceRef], rng: np.random.Generator) -> str:
    """`v` blended with another speaker of the same model in `pool` (or `v` itself if none)."""
    others = [o for o in pool if o.model == v.model and o.voice != v.voice]
    if "#" not in v.voice or not others:
        return v.voice
    other = others[int(rng.integers(len(others)))]
    w = float(rng.uniform(0.2, 0.8))
    return f"{v.voice}+{other.voice.rsplit('#', 1)[1]}@{w:.2f}"


def _entry_speakers(
    entry: Entry, k: int, count: int, seed: int, piper_mix: float
) -> list[tuple[VoiceRef, str, str]]:
    """(voice, voice name, split) for `count` speakers of entry number `k`."""
    rng = common.rng_for(seed, 6, k)
    groups = sorted({v.group for v in entry.voices})
    gsplit = dict(zip(groups, _assign(len(groups), rng)))
    pools = {s: [v for v in entry.voices if gsplit[v.group] == s] for s in SPLITS}
    splits = _assign(count, rng) if all(pools.values()) else ["train"] * count
    order = {s: rng.permutation(len(p)) for s, p in pools.items()}
    used = dict.fromkeys(SPLITS, 0)
    out = []
    for split in splits:
        pool = pools[split]
        v = pool[int(order[split][used[split] % len(pool)])]
        used[split] += 1
        name = _mix(v, pool, rng) if rng.random() < piper_mix else v.voice
        out.append((v, name, split))
    return out


def make_speakers(
    n: int, seed: int, entries: list[Entry] | None = None, piper_mix: float = 0.0
) -> list[Speaker]:
    """`n` distinct voice configurations from `entries` (default `--tts auto`), voice-disjoint
    over train/validation/test."""
    if n < 3:
        raise BadValueError(f"--speakers must be >= 3 (one per split at least), got {n}")
    if not 0.0 <= piper_mix <= 1.0:
        raise BadValueError(f"--piper-mix must be in [0, 1], got {piper_mix}")
    entries = entries if entries is not None else parse_tts("auto")
    rng = common.rng_for(seed, 1)
    speakers, seen = [], set()
    for k, (entry, count) in enumerate(zip(entries, allot(n, entries))):
        for v, name, split in _entry_speakers(entry, k, count, seed, piper_mix):
            lo, hi = RATES[v.backend]
            rate, pitch = int(rng.integers(lo, hi)), int(rng.integers(15, 86))
            range_ = int(rng.integers(10, 91))
            key = f"{seed}|{len(speakers)}|{name}|{rate}|{pitch}|{range_}"
            sid = hashlib.sha1(key.encode()).hexdigest()[:8]
            if sid in seen:  # a hash collision would merge two speakers; make it impossible
                raise RuntimeError(f"speaker id collision for {key}")
            seen.add(sid)
            speakers.append(
                Speaker(sid, name, rate, pitch, range_, split, v.group, v.model, v.config)
            )
    missing = [s for s in SPLITS if not any(p.split == s for p in speakers)]
    if missing:
        raise BadValueError(
            f"no speaker for {missing}: every --tts entry has fewer than 3 voices or speakers "
            "(a split needs voices of its own); add voices or raise --speakers"
        )
    return speakers


def draw_tts_params(spk: Speaker, rng: np.random.Generator) -> dict[str, float]:
    """Per-utterance engine settings a backend allows beyond rate/pitch (Piper's noise scales)."""
    if spk.backend != "piper":
        return {}
    return {
        "noise_scale": round(float(rng.uniform(0.45, 0.9)), 3),
        "noise_w": round(float(rng.uniform(0.5, 1.0)), 3),
    }


def speak(
    spk: Speaker, text: str, rate: int, pitch: int, seed: int, params: dict[str, float]
) -> np.ndarray:
    """`text` in the voice of `spk` at `rate`/`pitch` with the engine `params`."""
    if spk.backend == "piper":
        sid = spk.voice.split("#", 1)[1] if "#" in spk.voice else ""
        return tts_piper.synthesize(
            (spk.model, spk.config),
            text,
            speaker=sid,
            length_scale=175.0 / rate,
            noise_scale=params["noise_scale"],
            noise_w=params["noise_w"],
            seed=seed,
        )
    return synthesize(spk.voice, text, rate, pitch, spk.range_, seed)
