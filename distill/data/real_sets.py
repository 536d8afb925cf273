"""Held-out real speech as a test-only bank: measure how models trained on synthetic keywords
do on people.

`write_real_set(source, bank, out)` reads real takes laid out as for `synth-kws --recordings`
(``<word>/<take>.wav``, ``<word>/<speaker>/<take>.wav`` or ``<word>/<speaker>_nohash_<k>.wav``;
any rate, mono or stereo) and writes a folder that the keyword loaders read like the bank:

- ``<word>/<speaker id>_nohash_<n>.wav``: 16 kHz mono PCM16; each take is mixed to mono,
  resampled, trimmed to its speech (within 40 dB of its loudest 5 ms frame), mean removed,
  peak-normalised to -3 dBFS and placed at a seeded random position inside 1 s (20 ms margins)
  over a -80 dBFS white floor (so no 5 ms frame is digital silence); a take whose
  speech is longer than 0.96 s is kept whole with 20 ms margins (the loaders place any length up
  to the clip). Each take is written `copies` times (own position, floor, and at evaluation time
  its own noise, position and SNR: the copies count the take under several mixtures, not more
  voices);
- ``testing_list.txt`` lists every clip, ``validation_list.txt`` is empty (nothing trains);
- ``manifest.csv``: ``path,label,speaker,split,onset,offset,source``, the speech span (within
  35 dB of the loudest 5 ms frame, as the bank's) so the loader's SNR is over the speech;
- ``_background_noise_/`` and ``noise_splits.csv``: the bank's *test* noise files, copied, so
  evaluating at the bank's SNR range mixes real voices into the noise the synthetic test clips
  get;
- ``real_set.json``: source files with their sha256, speakers, options and counts.

Speaker ids are those of `--recordings` (``r`` + 7 hex digits of the name).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np

from distill.data.synth.common import commit_partial, prepare_partial, rng_for
from distill.data.synth.dsp import active_span, peak_normalise, write_wav
from distill.data.synth.recordings import load_take, scan
from distill.errors import BadValueError, MissingFileError

SR = 16000
CLIP = SR  # 1 s, as the bank's clips
MARGIN = SR // 50  # 20 ms
NOISE_DIR = "_background_noise_"


def bank_test_noise(bank: Path) -> list[str]:
    """Names of the test-split noise files of a synth_kws bank (from its noise_splits.csv)."""
    path = Path(bank) / "noise_splits.csv"
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: --bank must be a synth-kws bank")
    with open(path, newline="") as fh:
        names = [r["file"] for r in csv.DictReader(fh) if r["split"] in ("test", "testing")]
    if not names:
        raise BadValueError(f"{path} assigns no noise file to the test split")
    return names


def bank_words(bank: Path) -> list[str]:
    """Keyword and unknown-word folders of a bank (from its dataset.json)."""
    path = Path(bank) / "dataset.json"
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: --bank must be a synth-kws bank")
    meta = json.loads(path.read_text())
    return list(meta["words"]) + list(meta.get("unknown_words") or [])


def place_take(speech: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The take at -3 dBFS peak inside a 1 s clip (longer: whole, 20 ms margins) over a
    -80 dBFS floor; returns the clip and the take's first sample in it."""
    speech = peak_normalise(speech, -3.0)
    n = max(CLIP, len(speech) + 2 * MARGIN)
    start = int(rng.integers(MARGIN, n - MARGIN - len(speech) + 1))
    clip = (rng.standard_normal(n) * 10 ** (-80 / 20)).astype(np.float32)
    clip[start : start + len(speech)] += speech
    return clip, start


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_real_set(
    source: Path, bank: Path, out: Path, copies: int = 30, seed: int = 0, overwrite: bool = False
) -> dict:
    """Write the test-only real set of `source` next to the noise of `bank` into `out`; returns
    the summary written to real_set.json."""
    if copies < 1:
        raise BadValueError(f"copies must be >= 1, got {copies}")
    words = bank_words(bank)
    noise = bank_test_noise(bank)
    takes = scan(Path(source), words, seed)
    partial = prepare_partial(Path(out), overwrite)
    rows, sources = [], []
    counters: dict[tuple[str, str], int] = {}
    for t_index, take in enumerate(takes):
        speech = load_take(take.path)
        sources.append(
            {
                "path": take.path,
                "sha256": _sha256(take.path),
                "word": take.label,
                "speaker": take.speaker,
                "seconds": round(len(speech) / SR, 3),
            }
        )
        for c in range(copies):
            key = (take.label, take.speaker_id)
            k = counters.get(key, 0)
            counters[key] = k + 1
            clip, start = place_take(speech, rng_for(seed, 9, t_index, c))
            a, b = active_span(clip[start : start + len(speech)], threshold_db=-35.0, frame=80)
            rel = f"{take.label}/{take.speaker_id}_nohash_{k}.wav"
            write_wav(partial / rel, clip)
            rows.append(
                [
                    rel,
                    take.label,
                    take.speaker_id,
                    "test",
                    f"{(start + a) / SR:.4f}",
                    f"{(start + b) / SR:.4f}",
                    take.path,
                ]
            )
    _write_tables(partial, rows)
    (partial / NOISE_DIR).mkdir()
    for name in noise:
        shutil.copyfile(Path(bank) / NOISE_DIR / name, partial / NOISE_DIR / name)
    write_noise_splits(partial, noise)
    summary = {
        "kind": "real_set",
        "source": str(source),
        "bank": str(bank),
        "copies": copies,
        "seed": seed,
        "clips": len(rows),
        "takes": len(takes),
        "words": sorted({t.label for t in takes}),
        "speakers": {t.speaker_id: t.speaker for t in takes},
        "noise_files": noise,
        "sources": sources,
    }
    (partial / "real_set.json").write_text(json.dumps(summary, indent=2) + "\n")
    commit_partial(partial, Path(out))
    return summary


def _write_tables(root: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "speaker", "split", "onset", "offset", "source"])
    writer.writerows(rows)
    (root / "manifest.csv").write_text(buf.getvalue())
    (root / "testing_list.txt").write_text("".join(r[0] + "\n" for r in rows))
    (root / "validation_list.txt").write_text("")


def write_noise_splits(root: Path, names: list[str]) -> None:
    """noise_splits.csv assigning `names` to the test split."""
    lines = ["file,split"] + [f"{n},test" for n in names]
    (Path(root) / "noise_splits.csv").write_text("\n".join(lines) + "\n")
