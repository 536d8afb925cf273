"""A tiny SoundFont 2 writer for tests: the real RIFF layout, built from numpy samples.

`RIFF sfbk` with `LIST INFO` (ifil, INAM), `LIST sdta` (smpl, 16-bit PCM, each sample followed
by 46 zero points as the spec asks) and `LIST pdta` with all nine sub-chunks, each ending in its
terminal record ('EOP', 'EOI', 'EOS' and the zero records of the bag/mod/gen lists).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KEY_RANGE, VEL_RANGE, INSTRUMENT, SAMPLE_ID = 43, 44, 41, 53
COARSE, FINE, SAMPLE_MODES, ROOT_KEY = 51, 52, 54, 58


@dataclass
class Sample:
    name: str
    data: np.ndarray  # float in [-1, 1]
    rate: int
    root: int
    loop: tuple[int, int] | None = None  # (startloop, endloop) relative to the sample's start
    correction: int = 0  # cents


@dataclass
class Instrument:
    name: str
    zones: list[dict[int, object]]  # generator -> amount, (lo, hi) for ranges; 53 = sample index
    global_zone: dict[int, object] = field(default_factory=dict)


@dataclass
class Preset:
    name: str
    bank: int
    program: int
    zones: list[dict[int, object]]  # 41 = instrument index
    global_zone: dict[int, object] = field(default_factory=dict)


def _chunk(cid: str, data: bytes) -> bytes:
    return cid.encode() + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _list(kind: str, *chunks: bytes) -> bytes:
    return _chunk("LIST", kind.encode() + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode()[:19].ljust(20, b"\0")


def _gen_records(zone: dict[int, object]) -> bytes:
    """Generators in the spec's order: keyRange, velRange first; instrument/sampleID last."""
    order = sorted(zone, key=lambda op: (op != KEY_RANGE, op != VEL_RANGE, op in (41, 53), op))
    out = b""
    for op in order:
        v = zone[op]
        amount = v[0] | (v[1] << 8) if isinstance(v, tuple) else int(v) & 0xFFFF
        out += struct.pack("<HH", op, amount)
    return out


def _zones(heads: list, link: int) -> tuple[list[int], bytes, bytes, int]:
    """Bag start per head (plus the terminal one), the bag and gen chunks, and the gen count."""
    bag_starts, bags, gens, n_gen = [], b"", b"", 0
    for head in heads:
        bag_starts.append(len(bags) // 4)
        zones = ([head.global_zone] if head.global_zone else []) + head.zones
        for zone in zones:
            bags += struct.pack("<HH", n_gen, 0)
            records = _gen_records(zone)
            gens += records
            n_gen += len(records) // 4
    bag_starts.append(len(bags) // 4)
    bags += struct.pack("<HH", n_gen, 0)  # terminal bag
    return bag_starts, bags, gens + b"\0" * 4, n_gen


def write_sf2(
    path: Path,
    samples: list[Sample],
    instruments: list[Instrument],
    presets: list[Preset],
    skip_chunks: tuple[str, ...] = (),
    version: tuple[int, int] = (2, 1),
) -> Path:
    """Write a SoundFont file (`version` goes to ifil); `skip_chunks` leaves pdta sub-chunks
    out (to test errors)."""
    pcm, headers = [], b""
    pos = 0
    for s in samples:
        data = np.round(np.clip(s.data, -1, 1) * 32767).astype("<i2")
        lo, hi = s.loop if s.loop else (0, 0)
        headers += _name(s.name) + struct.pack(
            "<5IBbHH", pos, pos + len(data), pos + lo, pos + hi, s.rate, s.root, s.correction, 0, 1
        )
        pcm += [data, np.zeros(46, "<i2")]
        pos += len(data) + 46
    headers += _name("EOS") + b"\0" * 26
    inst_bags, ibag, igen, _ = _zones(instruments, SAMPLE_ID)
    inst = b"".join(_name(i.name) + struct.pack("<H", b) for i, b in zip(instruments, inst_bags))
    inst += _name("EOI") + struct.pack("<H", inst_bags[-1])
    pre_bags, pbag, pgen, _ = _zones(presets, INSTRUMENT)
    phdr = b"".join(
        _name(p.name) + struct.pack("<HHH3I", p.program, p.bank, b, 0, 0, 0)
        for p, b in zip(presets, pre_bags)
    )
    phdr += _name("EOP") + struct.pack("<HHH3I", 0, 0, pre_bags[-1], 0, 0, 0)
    pdta = {
        "phdr": phdr,
        "pbag": pbag,
        "pmod": b"\0" * 10,
        "pgen": pgen,
        "inst": inst,
        "ibag": ibag,
        "imod": b"\0" * 10,
        "igen": igen,
        "shdr": headers,
    }
    body = b"sfbk" + _list(
        "INFO", _chunk("ifil", struct.pack("<HH", *version)), _chunk("INAM", b"Test font\0\0")
    )
    body += _list("sdta", _chunk("smpl", np.concatenate(pcm).tobytes()))
    body += _list("pdta", *(_chunk(k, v) for k, v in pdta.items() if k not in skip_chunks))
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


def sine(freq: float, seconds: float, rate: int) -> np.ndarray:
    return 0.8 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def make_test_font(path: Path, rate: int = 22050) -> Path:
    """Bank 0 program 0: a looped 440 Hz sine (root key 69) over all keys, in an instrument
    whose global zone sets the loop mode; program 1: the same +7 semitones (coarse tune);
    program 2: +50 cents (fine tune, instrument level) and -30 cents (pitch correction) under a
    preset-level +30 cents; bank 128 program 0: a 0.1 s non-looped noise burst on key 38."""
    period_loop = rate // 10  # 0.1 s: 44 periods of 440 Hz at 22050 Hz, 44 at 16000 Hz too
    rng = np.random.default_rng(0)
    n = int(0.1 * 16000)
    burst = rng.uniform(-1, 1, n) * np.exp(-np.arange(n) / (0.03 * 16000))
    samples = [
        Sample("sine440", sine(440, 0.5, rate), rate, 69, (period_loop, 4 * period_loop)),
        Sample("sine440c", sine(440, 0.5, rate), rate, 69, (period_loop, 4 * period_loop), -30),
        Sample("burst", burst, 16000, 60),
    ]
    instruments = [
        Instrument("sine", [{KEY_RANGE: (0, 127), SAMPLE_ID: 0}], {SAMPLE_MODES: 1}),
        Instrument("sine+7", [{SAMPLE_ID: 0, SAMPLE_MODES: 1, COARSE: 7}]),
        Instrument("sine+50c", [{SAMPLE_ID: 1, SAMPLE_MODES: 1, FINE: 50}]),
        Instrument("drum", [{KEY_RANGE: (38, 38), SAMPLE_ID: 2, ROOT_KEY: 38}]),
    ]
    presets = [
        Preset("Sine", 0, 0, [{INSTRUMENT: 0}]),
        Preset("Sine +7", 0, 1, [{INSTRUMENT: 1}]),
        Preset("Sine +50c", 0, 2, [{INSTRUMENT: 2}], {FINE: 30}),
        Preset("Drums", 128, 0, [{KEY_RANGE: (0, 127), INSTRUMENT: 3}]),
    ]
    return write_sf2(path, samples, instruments, presets)
