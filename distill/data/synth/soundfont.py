"""A small pure-numpy SoundFont 2 (.sf2) reader and note renderer (no fluidsynth needed).

Reads the RIFF `sfbk` layout: 16-bit PCM from `sdta/smpl` (memory-mapped; `sm24` ignored) and
the preset -> instrument -> sample hierarchy from `pdta` (modulators ignored). A note is the sum
of the instrument zones matching its key and velocity, each sample pitch-shifted by linear
interpolation, looped when its sample mode says so, shaped by the zone's volume envelope
(attack, hold, decay, sustain) and short attack/release fades. Filters, LFOs, modulation
envelopes, pan, modulators and reverb/chorus sends of the font are not rendered.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from scipy import signal

from distill.errors import BadValueError

FONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
_RECORDS = {  # numpy layouts of the pdta records used (pmod/imod are skipped)
    "phdr": np.dtype([("name", "S20"), ("program", "<u2"), ("bank", "<u2"), ("bag", "<u2"),
                      ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")]),
    "pbag": np.dtype([("gen", "<u2"), ("mod", "<u2")]),
    "pgen": np.dtype([("op", "<u2"), ("amount", "<i2")]),
    "inst": np.dtype([("name", "S20"), ("bag", "<u2")]),
    "ibag": np.dtype([("gen", "<u2"), ("mod", "<u2")]),
    "igen": np.dtype([("op", "<u2"), ("amount", "<i2")]),
    "shdr": np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("startloop", "<u4"),
                      ("endloop", "<u4"), ("rate", "<u4"), ("pitch", "u1"), ("correction", "i1"),
                      ("link", "<u2"), ("type", "<u2")]),
}  # fmt: skip
INSTRUMENT, KEY_RANGE, VEL_RANGE, ATTENUATION = 41, 43, 44, 48
COARSE, FINE, SAMPLE_ID, SAMPLE_MODES, ROOT_KEY = 51, 52, 53, 54, 58
ADDRESS_OFFSETS = {0: ("start", 1), 4: ("start", 32768), 1: ("end", 1), 12: ("end", 32768),
                   2: ("startloop", 1), 45: ("startloop", 32768), 3: ("endloop", 1),
                   50: ("endloop", 32768)}  # fmt: skip
ATTACK_S, RELEASE_S = 0.005, 0.06


def _chunks(f: BinaryIO, start: int, end: int, where: str) -> dict[str, tuple[int, int]]:
    """`{id: (offset, size)}` of the RIFF chunks in file bytes [start, end); a `LIST` is keyed
    by its list type, its offset and size then cover the sub-chunks after the type."""
    found: dict[str, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        cid, size = struct.unpack("<4sI", f.read(8))
        name, body = cid.decode("latin-1"), pos + 8
        if body + size > end:
            raise BadValueError(f"{where}: chunk {name!r} is truncated ({size} bytes announced)")
        if name == "LIST" and size >= 4:
            name, body, size = f.read(4).decode("latin-1"), body + 4, size - 4
        found.setdefault(name, (body, size))
        pos = body + size + (size & 1)
    return found


def _gens(records: np.ndarray) -> dict[int, int]:
    """Generator operator -> signed amount (ranges are read from it as low/high bytes)."""
    return {int(op): int(amount) for op, amount in zip(records["op"], records["amount"])}


def _in_range(gens: dict[int, int], op: int, value: int) -> bool:
    if op not in gens:
        return True
    raw = gens[op] & 0xFFFF
    return (raw & 0xFF) <= value <= (raw >> 8)


def _envelope(z: dict[int, int], n: int, sr: int) -> np.ndarray:
    """The zone's volume envelope while the key is held: attack, hold, then a decay linear in
    dB to the sustain level (the font's times in timecents, sustain in centibels)."""
    attack, hold, decay = (2 ** (z.get(op, -12000) / 1200) for op in (34, 35, 36))
    sustain_db = min(max(z.get(37, 0), 0), 1440) / 10
    t = np.arange(n) / sr
    db = -sustain_db * np.clip((t - attack - hold) / decay, 0, 1)
    return np.clip(t / max(attack, ATTACK_S), 0, 1) * 10 ** (db / 20)


@dataclass
class SoundFont:
    """A parsed .sf2: int16 sample pool plus the preset/instrument/sample tables."""

    path: Path
    name: str
    samples: np.ndarray  # int16, memory-mapped from the file
    tables: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: str | Path) -> SoundFont:
        """Parse `path`; `ValueError` naming the file if it is not a well-formed SoundFont 2."""
        path = Path(path)
        where, file_size = str(path), path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
                raise BadValueError(f"{where}: not a RIFF sfbk file")
            riff_end = 8 + struct.unpack("<I", head[4:8])[0]
            if riff_end > file_size:
                raise BadValueError(f"{where}: truncated ({file_size} of {riff_end} bytes)")
            lists = _chunks(f, 12, riff_end, where)
            for kind in ("sdta", "pdta"):
                if kind not in lists:
                    raise BadValueError(f"{where}: LIST {kind!r} chunk missing")
            info = lists.get("INFO", (0, 0))
            ifil = _chunks(f, info[0], sum(info), f"{where}: INFO").get("ifil")
            if ifil:
                f.seek(ifil[0])
                major = struct.unpack("<H", f.read(2))[0]
                if major >= 3:  # .sf3: Ogg Vorbis samples
                    raise BadValueError(
                        f"{where}: SoundFont {major} (compressed samples) not supported"
                    )
            smpl = _chunks(f, lists["sdta"][0], sum(lists["sdta"]), f"{where}: sdta")
            found = _chunks(f, lists["pdta"][0], sum(lists["pdta"]), f"{where}: pdta")
            tables = {}
            for cid, dtype in _RECORDS.items():
                if cid not in found:
                    raise BadValueError(f"{where}: pdta chunk {cid!r} missing")
                offset, size = found[cid]
                if size % dtype.itemsize or size < 2 * dtype.itemsize:  # a record + terminal
                    raise BadValueError(
                        f"{where}: pdta chunk {cid!r} has a bad size ({size} bytes)"
                    )
                f.seek(offset)
                tables[cid] = np.frombuffer(f.read(size), dtype=dtype)
        if "smpl" not in smpl:
            raise BadValueError(f"{where}: sdta chunk 'smpl' missing")
        offset, size = smpl["smpl"]
        samples = np.memmap(path, dtype="<i2", mode="r", offset=offset, shape=(size // 2,))
        font = cls(path, path.stem, samples, tables)
        font._check(where)
        return font

    def _check(self, where: str) -> None:
        t = self.tables
        for parent, child, key in (("phdr", "pbag", "bag"), ("inst", "ibag", "bag")):
            bags = t[parent][key].astype(int)
            if np.any(np.diff(bags) < 0) or bags[-1] >= len(t[child]):
                raise BadValueError(f"{where}: pdta {parent!r} bag indices out of order or range")
        for bag, gen in (("pbag", "pgen"), ("ibag", "igen")):
            if t[bag]["gen"][-1] > len(t[gen]) or np.any(np.diff(t[bag]["gen"].astype(int)) < 0):
                raise BadValueError(
                    f"{where}: pdta {bag!r} generator indices out of order or range"
                )
        if np.any(t["shdr"]["end"][:-1] > len(self.samples)):
            raise BadValueError(f"{where}: a sample header points past the end of the sample data")

    @functools.cached_property
    def presets(self) -> dict[tuple[int, int], int]:
        """(bank, program) -> row of `phdr` (the terminal 'EOP' record excluded)."""
        ph = self.tables["phdr"][:-1]
        return {(int(b), int(p)): i for i, (b, p) in enumerate(zip(ph["bank"], ph["program"]))}

    def _zones(self, kind: str, index: int, link: int) -> list[dict[int, int]]:
        """Generators of each zone of preset/instrument `index`, the global zone merged in."""
        head, bag, gen = ("phdr", "pbag", "pgen") if kind == "p" else ("inst", "ibag", "igen")
        t = self.tables
        bags = range(int(t[head]["bag"][index]), int(t[head]["bag"][index + 1]))
        zones = [_gens(t[gen][int(t[bag]["gen"][b]) : int(t[bag]["gen"][b + 1])]) for b in bags]
        base = zones.pop(0) if zones and link not in zones[0] else {}
        return [{**base, **z} for z in zones if link in z]

    def zones(self, bank: int, program: int, key: int, velocity: int) -> list[dict[int, int]]:
        """Merged generators of every instrument zone sounding for this key and velocity."""
        if (bank, program) not in self.presets:
            some = ", ".join(f"{b}:{p}" for b, p in sorted(self.presets)[:8])
            raise KeyError(
                f"{self.path}: no preset bank {bank} program {program} "
                f"({len(self.presets)} presets, e.g. bank:program {some})"
            )
        out = []
        for pz in self._zones("p", self.presets[bank, program], INSTRUMENT):
            if not (_in_range(pz, KEY_RANGE, key) and _in_range(pz, VEL_RANGE, velocity)):
                continue
            if not 0 <= pz[INSTRUMENT] < len(self.tables["inst"]) - 1:
                continue
            for iz in self._zones("i", pz[INSTRUMENT], SAMPLE_ID):
                if (
                    _in_range(iz, KEY_RANGE, key)
                    and _in_range(iz, VEL_RANGE, velocity)
                    and 0 <= iz[SAMPLE_ID] < len(self.tables["shdr"]) - 1
                ):
                    add = {op: iz.get(op, 0) + pz.get(op, 0) for op in (COARSE, FINE, ATTENUATION)}
                    out.append({**iz, **add})  # preset tuning and attenuation add on
        return out

    def render_note(
        self, bank: int, program: int, key: int, velocity: int, seconds: float,
        sample_rate: int = 16000,
    ) -> np.ndarray:  # fmt: skip
        """One note as float32 at `sample_rate`, peak 1: `seconds` long if its samples loop, else
        until they end (at most `seconds`); empty if no zone sounds at this key and velocity."""
        zones = self.zones(bank, program, key, velocity)
        n_max = max(1, int(round(seconds * sample_rate)))
        parts = [self._render_zone(z, key, n_max, sample_rate) for z in zones]
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.zeros(0, np.float32)
        out = np.zeros(max(len(p) for p in parts))
        for p in parts:
            out[: len(p)] += p
        fade = np.ones(len(out))
        n_att, n_rel = int(ATTACK_S * sample_rate), int(RELEASE_S * sample_rate)
        n_att, n_rel = min(n_att, len(out) // 4), min(n_rel, len(out) // 3)
        fade[:n_att] = np.linspace(0, 1, n_att, endpoint=False)
        if n_rel:
            fade[-n_rel:] = np.linspace(1, 0, n_rel)
        out *= fade
        return (out / (np.max(np.abs(out)) + 1e-12)).astype(np.float32)

    def _render_zone(self, z: dict[int, int], key: int, n_out: int, sr_out: int) -> np.ndarray:
        h = self.tables["shdr"][z[SAMPLE_ID]]
        addr = {k: int(h[k]) for k in ("start", "end", "startloop", "endloop")}
        for op, (field, scale) in ADDRESS_OFFSETS.items():
            addr[field] += z.get(op, 0) * scale
        start, end = max(addr["start"], 0), min(addr["end"], len(self.samples))
        if end - start < 2 or h["rate"] == 0:
            return np.zeros(0)
        root = z.get(ROOT_KEY, -1)
        root = root if 0 <= root <= 127 else (int(h["pitch"]) if h["pitch"] <= 127 else 60)
        cents = (key - root + z.get(COARSE, 0)) * 100 + z.get(FINE, 0) + int(h["correction"])
        step = float(h["rate"]) / sr_out * 2 ** (cents / 1200)  # source samples per output one
        over = max(1, int(np.ceil(step)))  # oversample, then anti-alias down to sr_out
        loop_lo, loop_hi = addr["startloop"] - start, addr["endloop"] - start
        looped = z.get(SAMPLE_MODES, 0) & 1 and 0 <= loop_lo < loop_hi - 1 <= end - start - 1
        src = self.samples[start : (start + loop_hi if looped else end)].astype(np.float64)
        src -= np.mean(src[loop_lo:] if looped else src)  # some samples carry a DC offset
        pos = np.arange(n_out * over) * (step / over)
        if looped:
            src = np.append(src, src[loop_lo])  # the sample after the loop's end is its start
            wrap = pos >= loop_hi
            pos[wrap] = loop_lo + (pos[wrap] - loop_lo) % (loop_hi - loop_lo)
        else:
            pos = pos[pos <= len(src) - 1]
        x = np.interp(pos, np.arange(len(src)), src) / 32768.0
        if over > 1:
            x = signal.resample_poly(x, 1, over)
        return x * _envelope(z, len(x), sr_out) * 10 ** (-max(z.get(ATTENUATION, 0), 0) / 200)


@functools.lru_cache(maxsize=4)
def load_soundfont(path: str) -> SoundFont:
    """`SoundFont.load(path)`, cached per process (clips are rendered in worker processes)."""
    return SoundFont.load(path)


def render_note(
    font: str | Path | SoundFont, bank: int, program: int, key: int, velocity: int,
    seconds: float, sample_rate: int = 16000,
) -> np.ndarray:  # fmt: skip
    """Render one note of preset (bank, program) from a font (path or loaded) as float32."""
    if not isinstance(font, SoundFont):
        font = load_soundfont(str(font))
    return font.render_note(bank, program, key, velocity, seconds, sample_rate)


def find_soundfonts() -> list[Path]:
    """`*.sf2` under /usr/share/sounds/sf2 and /usr/share/soundfonts, sorted, links deduplicated."""
    found = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.sf2") if p.is_file())
    seen: set[Path] = set()  # Debian's default-GM.sf2 is a link to one of the others
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]
