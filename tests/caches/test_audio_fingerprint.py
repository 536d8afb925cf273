"""Caches see the audio: replaced or removed files are named, the hash index is reused, and a
clip's mixture depends on its id only (removing a file changes no other clip's audio)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import DictConfig

from distill import teachers
from distill.caches.feature_cache import attach_feature_cache
from distill.caches.fingerprint import data_files
from distill.caches.records import StaleCacheError, describe_file_changes
from distill.caches.teacher_cache import build_cache, teacher_cache_for
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule, file_index
from distill.data.base import SPLITS
from distill.data.file_index import INDEX_FILE
from distill.data.frontend import build_frontend
from tests.data.fakes import make_fsd50k, make_speech_commands, tone
from tests.helpers.recipes import tiny_recipe

DAY_NS = 86_400 * 10**9


def backdate(root: Path) -> None:
    """Give every file an mtime a day old (as a dataset that was not just written)."""
    stamp = time.time_ns() - DAY_NS
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(stamp, stamp))


def copy_bank(bank: Path, tmp: Path) -> Path:
    root = tmp / "bank"
    shutil.copytree(bank, root)
    backdate(root)
    return root


def recipe(root: Path, tmp: Path) -> DictConfig:
    cfg = tiny_recipe(root, tmp, logit_kd=0.5)
    cfg.data.cache_features = True
    cfg.data.feature_cache_dir = str(tmp / "features")
    return cfg


def save_teacher(cfg: DictConfig) -> None:
    names = build_datamodule(cfg.data).class_names
    teacher = teachers.create("inhouse", preset="tiny", class_names=names)
    teacher.save_pretrained(Path(cfg.teacher.path))


def train_file(root: Path, word: str = "yes") -> Path:
    """A training clip of `word` (not in the validation or test lists)."""
    listed = (root / "validation_list.txt").read_text() + (root / "testing_list.txt").read_text()
    return next(p for p in sorted((root / word).glob("*.wav")) if f"{word}/{p.name}" not in listed)


def build_both(cfg: DictConfig):
    dm = build_datamodule(cfg.data)
    teacher = load_teacher_for(cfg)
    cache = build_cache(cfg, teacher, dm)
    attach_feature_cache(cfg, dm, build_frontend(cfg.frontend))
    return teacher, cache


def test_replaced_wav_is_refused_by_both_caches_naming_it(tiny_kws_bank: Path, tmp_path: Path):
    root = copy_bank(tiny_kws_bank, tmp_path)
    cfg = recipe(root, tmp_path)
    save_teacher(cfg)
    teacher, _ = build_both(cfg)
    victim = train_file(root)
    before = victim.stat()
    other = np.zeros(16000, np.float32)
    other[3200:11200] = tone(0.5, 1234.0, 16000)  # other audio, same name, same size
    sf.write(victim, other, 16000)
    os.utime(victim, ns=(before.st_mtime_ns + 10**9, before.st_mtime_ns + 10**9))
    assert victim.stat().st_size == before.st_size
    rel = f"yes/{victim.name}"
    dm = build_datamodule(cfg.data)
    with pytest.raises(StaleCacheError, match=rf"data changed .*: 1 file changed: {rel}\b"):
        teacher_cache_for(cfg, teacher, dm).check("train")
    with pytest.raises(StaleCacheError, match=rf"feature cache .* 1 file changed: {rel}\b"):
        attach_feature_cache(cfg, dm, build_frontend(cfg.frontend))


def test_removed_wav_is_named_and_other_records_are_unchanged(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    root = copy_bank(tiny_kws_bank, tmp_path)
    cfg = recipe(root, tmp_path)
    cfg.data.cache_features = False
    save_teacher(cfg)
    teacher = load_teacher_for(cfg)
    old = build_cache(cfg, teacher, build_datamodule(cfg.data), splits=("train",))
    ids = [i for i in _ids(old, "train")]
    old_out = old.lookup("train", ids)
    victim = train_file(root)
    victim.unlink()
    rel = f"yes/{victim.name}"
    with pytest.raises(StaleCacheError, match=rf"1 file removed: {rel}\b"):
        teacher_cache_for(cfg, teacher).check("train")
    new = build_cache(cfg, teacher, build_datamodule(cfg.data), rebuild=True, splits=("train",))
    kept = [i for i in ids if not i.startswith(rel + "#")]
    assert len(kept) == len(ids) - 2  # the two training variants of the removed clip
    assert sorted(_ids(new, "train")) == sorted(kept)
    new_out = new.lookup("train", kept)
    rows = [ids.index(i) for i in kept]
    # the same audio gives the same teacher outputs (up to batch-composition rounding)
    torch.testing.assert_close(new_out.logits, old_out.logits[rows], rtol=0, atol=1e-5)
    torch.testing.assert_close(new_out.attention, old_out.attention[rows], rtol=0, atol=1e-5)


def _ids(cache, split: str) -> list[str]:
    return list(cache.check(split)["clip_ids"])


def test_hash_index_is_reused_on_the_second_run(
    tiny_kws_bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_bank(tiny_kws_bank, tmp_path)
    cfg = recipe(root, tmp_path)
    calls: list[str] = []
    real = file_index.sha256_of_file
    monkeypatch.setattr(file_index, "sha256_of_file", lambda p: calls.append(p) or real(p))
    dm = build_datamodule(cfg.data)
    first = data_files(cfg, dm)
    assert (root / INDEX_FILE).is_file()
    wavs = {k for k in first if k.endswith(".wav")}
    assert len(wavs) == len(list(root.rglob("*.wav")))  # every clip and noise file
    assert "_background_noise_/train_noise0.wav" in wavs and "manifest.csv" in first
    assert len(calls) == len(first)
    calls.clear()
    assert data_files(cfg, build_datamodule(cfg.data)) == first
    assert calls == []  # nothing was read again: size and mtime matched the index
    victim = train_file(root)
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime: read again, same hash
    assert data_files(cfg, dm) == first and calls == [str(victim)]


def test_read_only_root_falls_back_to_the_user_cache(
    tiny_kws_bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_bank(tiny_kws_bank, tmp_path)
    (root / INDEX_FILE).mkdir()  # the root's index cannot be written (as in a read-only root)
    monkeypatch.setenv(file_index.CACHE_DIR_ENV, str(tmp_path / "user_cache"))
    cfg = recipe(root, tmp_path)
    dm = build_datamodule(cfg.data)
    first = data_files(cfg, dm)
    saved = list((tmp_path / "user_cache" / "file-index").glob("*.json"))
    assert len(saved) == 1
    calls: list[str] = []
    real = file_index.sha256_of_file
    monkeypatch.setattr(file_index, "sha256_of_file", lambda p: calls.append(p) or real(p))
    assert data_files(cfg, dm) == first and calls == []


def test_just_written_files_are_hashed_again(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.5, 440.0, 16000), 16000)
    index = file_index.FileIndex(tmp_path)
    first = index.sha256s([path])[str(path)]
    assert index.save() is None  # a file modified this instant is not trusted by its mtime
    sf.write(path, tone(0.5, 880.0, 16000), 16000)  # same size, maybe the same clock tick
    assert file_index.FileIndex(tmp_path).sha256s([path])[str(path)] != first


def test_file_changes_are_described_shortly() -> None:
    before = {f"f{i}.wav": "a" for i in range(9)} | {"gone.wav": "x"}
    now = {f"f{i}.wav": "b" for i in range(9)} | {"new.wav": "y"}
    text = describe_file_changes(before, now)
    assert text == (
        "9 files changed: f0.wav, f1.wav, f2.wav, f3.wav, f4.wav (+4 more); "
        "1 file removed: gone.wav; 1 file added: new.wav"
    )
    assert describe_file_changes(now, now) == ""


# -- a clip's audio depends on its id, not on its position -------------------------------------


def _sc_root(tmp: Path) -> Path:
    root = tmp / "sc"
    words = ["yes", "no", "up", "cat", "dog"]
    make_speech_commands(root, words, [f"{i:08x}" for i in range(6)], noise_files=2)
    return root


def _folder_root(tmp: Path) -> Path:
    root = tmp / "folder"
    for k, name in enumerate(["a", "b", "c"]):
        (root / name).mkdir(parents=True)
        for i in range(8):
            seconds = 1.5 + 0.25 * (i % 3)
            sf.write(root / name / f"{i}.wav", tone(seconds, 300 + 100 * k + 7 * i, 16000), 16000)
    return root


def _fsd_root(tmp: Path) -> Path:
    root = tmp / "fsd"
    dev = [(f"{k}", ["Bark"] if k % 2 else ["Music"], "train", 2.5) for k in range(10)]
    dev += [("50", ["Bark"], "val", 2.0)]
    make_fsd50k(root, ["Bark", "Music"], dev, [("90", ["Music"], 2.0)], sr=16000)
    return root


NOISY = {"time_shift_ms": 80.0, "noise_prob": 0.5}  # augmentation draws (shift and noise)
SETUPS = {
    "synth_kws": (None, {"classes": "12", "snr_db": [-5.0, 10.0], "augment": NOISY}, "yes"),
    "speech_commands": (
        _sc_root,
        {"classes": "yes,no,_unknown_,_silence_", "crop": "random", "augment": NOISY},
        "no",
    ),
    "folder": (_folder_root, {"classes": "all", "augment": {"time_shift_ms": 80.0}}, "b"),
    "fsd50k": (
        _fsd_root,
        {"classes": "all", "task": "multi_label", "augment": {"time_shift_ms": 80.0}},
        "FSD50K.dev_audio",
    ),
}


@pytest.mark.parametrize("name", list(SETUPS))
def test_removing_a_file_leaves_every_other_clip_bit_identical(
    name: str, tiny_kws_bank: Path, tmp_path: Path
) -> None:
    make, options, folder = SETUPS[name]
    root = copy_bank(tiny_kws_bank, tmp_path) if make is None else make(tmp_path)
    data = {"name": name, "root": str(root), "clip_seconds": 1.0, "train_variants": 2, **options}
    before = _all_items(data)
    victim = sorted((root / folder).glob("*.wav"))[1]
    victim.unlink()
    if name == "fsd50k":  # FSD50K lists its clips: the row goes with the file
        gt = root / "FSD50K.ground_truth" / "dev.csv"
        rows = gt.read_text().splitlines(keepends=True)
        gt.write_text("".join(r for r in rows if not r.startswith(f"{victim.stem},")))
    after = _all_items(data)
    gone = [cid for cid in before if cid not in after]
    assert gone and all(f"/{victim.stem}" in cid for cid in gone)
    assert set(after) <= set(before)
    for cid, wave in after.items():
        assert torch.equal(wave, before[cid]), f"{name}: {cid} changed"


def _all_items(data: dict) -> dict[str, torch.Tensor]:
    """clip id (with its variant suffix) -> waveform, for every split and both variants."""
    dm = build_datamodule(data)
    items = {}
    for split in SPLITS:
        ds = dm.dataset(split)
        for epoch in (0, 1) if split == "train" else (0,):
            for k in range(len(ds)):
                item = ds[(epoch, k)]
                items[f"{split}:{item['clip_id']}"] = item["waveform"]
    return items
