"""`data.skip_bad_files`: bad files are left out when the datasets are built, never replaced by
another clip, and the skipped list reaches fit's results."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.data import build_datamodule, file_index
from distill.data.base import SPLITS, ranked, skipped_files
from distill.pipeline.results import FitResult

DAY_NS = 86_400 * 10**9


def bad_bank(bank: Path, tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the bank with a NaN training clip, an Inf validation clip and an unreadable
    test clip (files a day old); returns (root, {relative path: reason word})."""
    root = tmp / "bank"
    shutil.copytree(bank, root)
    lists = {s: (root / f"{s}_list.txt").read_text().split() for s in ("validation", "testing")}
    train = next(
        f"yes/{p.name}"
        for p in sorted((root / "yes").glob("*.wav"))
        if f"yes/{p.name}" not in lists["validation"] + lists["testing"]
    )
    nan = np.zeros(16000, np.float32)
    nan[100] = np.nan
    sf.write(root / train, nan, 16000, subtype="FLOAT")
    inf = np.zeros(16000, np.float32)
    inf[7] = np.inf
    sf.write(root / lists["validation"][0], inf, 16000, subtype="FLOAT")
    (root / lists["testing"][0]).write_bytes(b"RIFF....not audio")
    stamp = time.time_ns() - DAY_NS
    for path in root.rglob("*.wav"):
        os.utime(path, ns=(stamp, stamp))
    bad = {train: "NaN/inf", lists["validation"][0]: "NaN/inf", lists["testing"][0]: "cannot read"}
    return root, bad


def data_section(root: Path, **extra: object) -> dict:
    return {
        "name": "synth_kws",
        "root": str(root),
        "clip_seconds": 1.0,
        "train_variants": 2,
        "batch_size": 8,
        "skip_bad_files": True,
        **extra,
    }


def loader_ids(dm, split: str) -> list[str]:
    return [cid for batch in dm.dataloader(split) for cid in batch["clip_id"]]


def test_bad_files_are_left_out_never_duplicated(tiny_kws_bank: Path, tmp_path: Path) -> None:
    root, bad = bad_bank(tiny_kws_bank, tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 bad file"):
        dm = build_datamodule(data_section(root))
        datasets = [dm.dataset(s) for s in SPLITS]
    for split in SPLITS:
        ids = loader_ids(dm, split)  # what training and evaluation see
        assert len(ids) == len(set(ids)) == len(dm.dataset(split))
        assert not [cid for cid in ids if cid.split("#")[0] in bad]
    listed = skipped_files(datasets)
    assert [Path(s["path"]).relative_to(root).as_posix() for s in listed] == sorted(bad)
    for entry in listed:
        assert bad[Path(entry["path"]).relative_to(root).as_posix()] in entry["reason"]
    # without skipping the same bank fails on the unreadable clip when built, naming it
    plain = build_datamodule(data_section(root, skip_bad_files=False))
    with pytest.raises(ValueError, match="cannot read audio file"):
        plain.dataset("test")


def test_limit_keeps_its_size_without_the_bad_clip(tiny_kws_bank: Path, tmp_path: Path) -> None:
    root, bad = bad_bank(tiny_kws_bank, tmp_path)
    full = build_datamodule(data_section(root, skip_bad_files=False)).dataset("train")
    ids = [e.clip_id for e in full.entries]
    nan_clip = next(cid for cid in ids if cid in bad)
    limit = ranked(ids).index(ids.index(nan_clip)) + 1  # the bad clip is the limit's last
    with pytest.warns(UserWarning, match="NaN/inf"):
        small = build_datamodule(data_section(root, limit_train=limit)).dataset("train")
    assert len(small) == limit  # the next clip in the limit order takes its place
    kept = [e.clip_id for e in small.entries]
    assert len(set(kept)) == len(kept) and nan_clip not in kept
    assert set(kept) - {ids[i] for i in ranked(ids)[:limit]} == {ids[ranked(ids)[limit]]}


def test_sample_checks_are_remembered(
    tiny_kws_bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = bad_bank(tiny_kws_bank, tmp_path)
    calls: list[str] = []
    real = file_index.sample_problem
    monkeypatch.setattr(file_index, "sample_problem", lambda p: calls.append(p) or real(p))
    with pytest.warns(UserWarning):
        first = build_datamodule(data_section(root)).dataset("train")
    assert len(calls) == len(first) - sum(e.path is None for e in first.entries) + 1
    calls.clear()
    with pytest.warns(UserWarning, match="NaN/inf"):  # still skipped (and reported) ...
        again = build_datamodule(data_section(root)).dataset("train")
    assert calls == [] and [e.clip_id for e in again.entries] == [e.clip_id for e in first.entries]


def test_fit_results_list_the_skipped_files(tiny_kws_bank: Path, tmp_path: Path) -> None:
    from distill.pipeline.fit import fit
    from tests.helpers.recipes import tiny_recipe

    root, bad = bad_bank(tiny_kws_bank, tmp_path)
    cfg = tiny_recipe(root, tmp_path)
    cfg.teacher.kind, cfg.teacher.path, cfg.teacher.kwargs = "none", None, {}
    cfg.data.clip_seconds = 1.0
    cfg.data.skip_bad_files = True
    with pytest.warns(UserWarning):
        results = fit(cfg)
    written = json.loads((Path(results.run_dir) / "results.json").read_text())
    paths = [Path(s["path"]).relative_to(root).as_posix() for s in written["skipped_files"]]
    assert paths == sorted(bad) and written["skipped_files"] == results.skipped_files
    assert "skipped_files" not in FitResult(recipe="x").to_dict()  # off: not in the file
