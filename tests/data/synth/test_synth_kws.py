"""synth-kws: layout, audio format, manifest, splits, determinism, custom words, CLI, atomicity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf

from distill.cli import main
from distill.data.synth import kws
from distill.data.synth.common import DatasetExistsError
from distill.data.synth.kws import MANIFEST_COLUMNS, synth_kws
from distill.data.synth.words import SPEECH_COMMANDS_V2, label_of

# eSpeak NG without augmentation: these tests are about the bank, not the voices (the default
# mix is tested in test_tts_backends.py)
TINY = dict(
    speakers=6, workers=1, noise_seconds=2.0, noise_per_type=3, tts="espeak", augment="none"
)


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kws") / "bank"
    synth_kws(root, per_word=2, seed=3, **TINY)
    return root


def test_layout_and_wav_format(bank: Path) -> None:
    for name in ("manifest.csv", "dataset.json", "validation_list.txt", "testing_list.txt"):
        assert (bank / name).is_file(), name
    meta = json.loads((bank / "dataset.json").read_text())
    assert meta["kind"] == "synth_kws" and meta["sample_rate"] == 16000 and meta["version"] == 1
    assert meta["words"] == SPEECH_COMMANDS_V2 and meta["seed"] == 3
    assert not (bank.parent / "bank.partial").exists()
    wavs = sorted(p for p in bank.glob("*/*.wav") if p.parent.name != "_background_noise_")
    assert len(wavs) == 2 * 35
    for p in wavs:
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            16000,
            1,
            16000,
            "PCM_16",
        ), p
        assert "_nohash_" in p.name


def test_manifest_matches_files(bank: Path) -> None:
    rows = _manifest(bank)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    files = {
        str(p.relative_to(bank))
        for p in bank.glob("*/*.wav")
        if p.parent.name != "_background_noise_"
    }
    assert {r["path"] for r in rows} == files
    for r in rows:
        onset, offset = float(r["onset"]), float(r["offset"])
        assert 0.0 <= onset < offset <= 1.0, r
        assert r["path"].startswith(r["label"] + "/")
        assert r["path"].split("/")[1].startswith(r["speaker"] + "_nohash_")
        assert -20.0 <= float(r["gain_db"]) <= -1.0


def test_onset_offset_bound_the_energy(bank: Path) -> None:
    row = _manifest(bank)[0]
    x, sr = sf.read(str(bank / row["path"]))
    on, off = int(float(row["onset"]) * sr), int(float(row["offset"]) * sr)
    inside = (x[on:off] ** 2).sum()
    assert inside / (x**2).sum() > 0.9


def test_splits_speaker_disjoint_and_lists(bank: Path) -> None:
    rows = _manifest(bank)
    split_of: dict[str, set[str]] = {}
    for r in rows:
        split_of.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert {next(iter(s)) for s in split_of.values()} == {"train", "validation", "test"}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        listed = (bank / name).read_text().split()
        assert listed == sorted(r["path"] for r in rows if r["split"] == split)


def test_noise_bank_and_splits(bank: Path) -> None:
    with open(bank / "noise_splits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    files = sorted(p.name for p in (bank / "_background_noise_").glob("*.wav"))
    assert sorted(r["file"] for r in rows) == files
    assert {"white_00.wav", "pink_00.wav", "brown_00.wav", "babble_00.wav", "music_00.wav"} <= set(
        files
    )
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    for name in files:
        info = sf.info(str(bank / "_background_noise_" / name))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    args = dict(words=["yes", "stop"], unknown_words=[], per_word=3, speakers=3, workers=1)
    args.update(noise_seconds=1.0, noise_per_type=3, tts="espeak", augment="none")
    synth_kws(tmp_path / "a", seed=7, **args)
    synth_kws(tmp_path / "b", seed=7, **args)
    synth_kws(tmp_path / "c", seed=8, **args)
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.wav"))
    assert files
    for rel in files + ["manifest.csv", "dataset.json"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "manifest.csv").read_bytes() != (
        tmp_path / "c" / "manifest.csv"
    ).read_bytes()


def test_more_clips_per_word_is_a_superset_with_the_same_splits(tmp_path: Path) -> None:
    args = dict(words=["yes", "stop"], unknown_words=[], speakers=4, workers=1, seed=5)
    args.update(noise_seconds=1.0, noise_per_type=3, tts="espeak", augment="none")
    synth_kws(tmp_path / "small", per_word=3, **args)
    synth_kws(tmp_path / "large", per_word=6, **args)  # beyond one round over the speakers
    small, large = _manifest(tmp_path / "small"), _manifest(tmp_path / "large")
    keys = ("label", "speaker", "split", "voice", "rate", "pitch")
    by_path = {r["path"]: {k: r[k] for k in keys} for r in large}
    assert len(large) == 2 * 6 and len(small) == 2 * 3
    for row in small:
        assert by_path[row["path"]] == {k: row[k] for k in keys}, row["path"]
    split_of = {r["speaker"]: r["split"] for r in small}
    assert all(split_of.get(r["speaker"], r["split"]) == r["split"] for r in large)
    noise = sorted((tmp_path / "small" / "_background_noise_").glob("*.wav"))
    assert noise and all(
        f.read_bytes() == (tmp_path / "large" / "_background_noise_" / f.name).read_bytes()
        for f in noise
    )


def test_parallel_workers_give_identical_files(tmp_path: Path) -> None:
    args = dict(words=["go"], unknown_words=[], per_word=6, speakers=3, seed=1)
    args.update(noise_seconds=1.0, noise_per_type=3, tts="espeak", augment="none")
    synth_kws(tmp_path / "one", workers=1, **args)
    synth_kws(tmp_path / "two", workers=2, **args)
    one, two = (sorted(p.relative_to(tmp_path / d) for p in (tmp_path / d).rglob("*.wav"))
                for d in ("one", "two"))  # fmt: skip
    assert one == two and len([p for p in one if p.parent.name == "go"]) == 6
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_custom_vocabulary_with_phrases(tmp_path: Path) -> None:
    root = tmp_path / "custom"
    synth_kws(root, words=["hey robot", "lights"], unknown_words=["apple"], per_word=2, **TINY)
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["words"] == ["hey_robot", "lights"] and meta["unknown_words"] == ["apple"]
    assert meta["texts"]["hey_robot"] == "hey robot"
    assert {r["label"] for r in _manifest(root)} == {"hey_robot", "lights", "apple"}
    assert len(list((root / "hey_robot").glob("*.wav"))) == 2


def test_bad_words_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keyword"):
        label_of("héllo/there")
    with pytest.raises(ValueError, match="given twice"):
        synth_kws(tmp_path / "x", words=["yes", "Yes"], **TINY)
    with pytest.raises(ValueError, match="shorten"):
        long = "this phrase is far too long to be spoken inside a single second of audio"
        synth_kws(tmp_path / "y", words=[long], unknown_words=[], per_word=1, **TINY)
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.partial").exists()


def test_failure_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = kws.render_clip, []

    def flaky(task: kws.ClipTask) -> dict:
        calls.append(task)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(task)

    monkeypatch.setattr(kws, "render_clip", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        synth_kws(tmp_path / "r", words=["yes"], unknown_words=[], per_word=5, **TINY)
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        synth_kws(out, words=["yes"], unknown_words=[], per_word=1, **TINY)
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["data", "synth-kws", "--out", str(out), "--words", "yes,no", "--unknown-words"]
    argv += ["--per-word", "2", "--speakers", "3", "--workers", "1", "--noise-seconds", "1"]
    argv += ["--noise-per-type", "3", "--tts", "espeak", "--augment", "none"]
    assert main(argv) == 0
    assert "speakers_per_split" in capsys.readouterr().out
    assert {r["label"] for r in _manifest(out)} == {"yes", "no"}
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert (out / "dataset.json").is_file() and not (tmp_path / "cli.old").exists()
