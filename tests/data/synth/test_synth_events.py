"""synth-events: FSD50K-format CSVs, vocabulary, event manifest, multi-hot counts, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf

from distill.cli import main
from distill.data.synth.events import ALL_CLASSES, synth_events


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ev") / "events"
    # synthesised classes only, whatever SoundFonts the machine has (see test_soundfont.py)
    synth_events(root, clips=30, clip_seconds=2.0, seed=2, workers=1, soundfont="none")
    return root


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_fsd50k_csvs(events: Path) -> None:
    gt = events / "FSD50K.ground_truth"
    vocab = _read(gt / "vocabulary.csv")
    assert len(ALL_CLASSES) >= 20 and len(vocab) == len(ALL_CLASSES)
    assert [int(r[0]) for r in vocab] == list(range(len(vocab)))
    mid = {r[1]: r[2] for r in vocab}
    assert all(m.startswith("/synth/") for m in mid.values())
    dev, ev = _read(gt / "dev.csv"), _read(gt / "eval.csv")
    assert dev[0] == ["fname", "labels", "mids", "split"] and ev[0] == ["fname", "labels", "mids"]
    assert {r[3] for r in dev[1:]} == {"train", "val"}
    assert len(dev) - 1 + len(ev) - 1 == 30 and len(ev) > 1
    for folder, rows in (("FSD50K.dev_audio", dev[1:]), ("FSD50K.eval_audio", ev[1:])):
        for r in rows:
            labels = r[1].split(",")
            assert 1 <= len(labels) <= 5 and len(set(labels)) == len(labels)
            assert set(labels) <= set(mid)
            assert r[2].split(",") == [mid[x] for x in labels]
            info = sf.info(str(events / folder / f"{r[0]}.wav"))
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000)
    multi = [r for r in dev[1:] if "," in r[1]]
    assert multi, "no development clip holds two or more classes"
    text = (gt / "dev.csv").read_text()
    assert all(f'"{r[1]}","{r[2]}"' in text for r in multi)  # quoted, as in FSD50K's CSVs


def test_events_manifest_consistent(events: Path) -> None:
    gt = events / "FSD50K.ground_truth"
    labels = {r[0]: set(r[1].split(",")) for r in _read(gt / "dev.csv")[1:]}
    labels.update({r[0]: set(r[1].split(",")) for r in _read(gt / "eval.csv")[1:]})
    with open(events / "events_manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, set[str]] = {}
    for r in rows:
        assert 0.0 <= float(r["onset"]) < float(r["offset"]) <= 2.0, r
        seen.setdefault(r["fname"], set()).add(r["label"])
    assert seen == labels
    per_clip = [sum(r["fname"] == f for r in rows) for f in labels]
    assert min(per_clip) >= 1 and max(per_clip) <= 5
    meta = json.loads((events / "dataset.json").read_text())
    assert meta["kind"] == "synth_events" and meta["sample_rate"] == 16000


def test_class_subset_cli_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    argv = ["data", "synth-events", "--out", str(out), "--clips", "6", "--clip-seconds", "1"]
    assert main(argv + ["--classes", "4", "--workers", "1"]) == 0
    assert [r[1] for r in _read(out / "FSD50K.ground_truth" / "vocabulary.csv")] == list(
        ALL_CLASSES[:4]
    )
    assert main(argv + ["--classes", "4", "--workers", "1"]) == 2
    with pytest.raises(ValueError, match="--classes"):
        synth_events(
            tmp_path / "bad", clips=5, classes=len(ALL_CLASSES) + 1, workers=1, soundfont="none"
        )
    assert not (tmp_path / "bad").exists()
