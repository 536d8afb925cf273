"""Room impulse responses for the `room` augmentation: simulated rooms or a folder of measured ones.

Simulated (default): `n` shoebox rooms by the image-source method of `pyroomacoustics`
(frequency-flat wall absorption from Sabine's formula for a target RT60 of 0.15-0.7 s, reflection
order at most 50, 3-10 x 3-8 x 2.4-4 m, source and microphone at least 0.5 m from the walls and
0.5-4 m apart). Measured (`--rir-dir DIR`): every audio file under DIR, mixed to mono, resampled
to 16 kHz and cut to start 2 ms before its strongest sample. Either way the responses are written
to `<bank>/_rooms/room_<nnn>.wav` (float32) and listed in `<bank>/rooms.csv`; each belongs to one
split (`noise.split_of_index`), and a clip uses only rooms of its own split.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from distill.data.synth.common import parallel_map, rng_for
from distill.data.synth.dsp import SAMPLE_RATE, resample
from distill.data.synth.noise import find_audio, split_of_index
from distill.errors import BadValueError
from distill.extras import require

FOLDER = "_rooms"
MAX_ORDER = 50


@dataclass(frozen=True)
class RoomTask:
    """One simulated room to make."""

    index: int
    seed: int


def _simulate(task: RoomTask) -> tuple[np.ndarray, dict[str, object]]:
    pra = require("pyroomacoustics", "synth", "--augment room (simulated rooms)")
    rng = rng_for(task.seed, 2_000, task.index)
    dims = [float(rng.uniform(3, 10)), float(rng.uniform(3, 8)), float(rng.uniform(2.4, 4))]
    rt60 = float(rng.uniform(0.15, 0.7))
    absorption, order = pra.inverse_sabine(rt60, dims)
    while True:
        src = [float(rng.uniform(0.5, d - 0.5)) for d in dims]
        mic = [float(rng.uniform(0.5, d - 0.5)) for d in dims]
        if 0.5 <= float(np.linalg.norm(np.subtract(src, mic))) <= 4.0:
            break
    room = pra.ShoeBox(
        dims,
        fs=SAMPLE_RATE,
        materials=pra.Material(float(absorption)),
        max_order=int(min(order, MAX_ORDER)),
        air_absorption=False,
        use_rand_ism=False,
    )
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    info = {
        "source": "simulated",
        "rt60_target": round(rt60, 3),
        "dims": [round(d, 2) for d in dims],
        "absorption": round(float(absorption), 4),
        "max_order": int(min(order, MAX_ORDER)),
        "distance": round(float(np.linalg.norm(np.subtract(src, mic))), 2),
    }
    return _trim(rir), info


def _trim(rir: np.ndarray) -> np.ndarray:
    """`rir` starting 2 ms before its strongest sample, peak 1."""
    peak = int(np.argmax(np.abs(rir)))
    rir = rir[max(0, peak - int(0.002 * SAMPLE_RATE)) :]
    return (rir / (np.max(np.abs(rir)) + 1e-12)).astype(np.float32)


def write_rooms(
    root: Path, n: int, seed: int, workers: int, rir_dir: Path | None = None
) -> list[dict[str, object]]:
    """Write the room bank under `root`; returns one row per room (file, split, source, ...)."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    if rir_dir is not None:
        files = find_audio(rir_dir)
        for i, path in enumerate(files):
            x, sr = sf.read(str(path), dtype="float32", always_2d=True)
            if not np.any(x):
                raise BadValueError(f"--rir-dir {path}: silent file")
            rir = _trim(resample(x.mean(axis=1), sr).astype(np.float64))
            rows.append({"source": str(path), "split": split_of_index(i, len(files)), "rir": rir})
    else:
        if n < 3:
            raise BadValueError(f"--rooms must be >= 3 (one room per split), got {n}")
        tasks = [RoomTask(i, seed) for i in range(n)]
        for i, (rir, info) in enumerate(parallel_map(_simulate, tasks, workers, "rooms")):
            rows.append({**info, "split": split_of_index(i, n), "rir": rir})
    for i, row in enumerate(rows):
        row["file"] = f"room_{i:03d}.wav"
        sf.write(str(folder / row["file"]), row.pop("rir"), SAMPLE_RATE, subtype="FLOAT")
    with open(root / "rooms.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "split", "source"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return rows


@lru_cache(maxsize=256)
def load_rir(path: str) -> np.ndarray:
    """A room response written by `write_rooms` (cached per process)."""
    return sf.read(path, dtype="float32")[0]


def apply_room(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`x` convolved with `rir`, same length as `x`."""
    return signal.fftconvolve(x, rir)[: len(x)].astype(np.float32)
