"""FSD50K (multi-hot, crop offsets, event spans, bad input) and the generic folder dataset."""

from __future__ import annotations

import zlib

import pytest
import soundfile as sf
import torch

from distill.data.folder import FolderDataset, hash_split
from distill.data.fsd50k import FSD50K

from .fakes import make_fsd50k, tone

VOCAB = ["Guitar", "Music", "Dog", "Bark"]


@pytest.fixture()
def fsd(tmp_path):
    root = tmp_path / "fsd"
    dev = [
        ("101", ["Guitar", "Music"], "train", 3.0),
        ("102", ["Dog"], "train", 0.5),
        ("103", ["Bark", "Dog"], "val", 2.0),
    ]
    ev = [("201", ["Music"], 4.0), ("202", ["Dog", "Bark"], 1.0)]
    make_fsd50k(
        root,
        VOCAB,
        dev,
        ev,
        sr=44100,
        events={"101": [(0.5, 1.0), (2.5, 2.9)], "201": [(1.5, 2.5)]},
    )
    return root


def test_multi_hot_and_splits(fsd):
    train = FSD50K(fsd, "train", clip_seconds=1.0)
    assert train.task == "multi_label" and train.class_names == VOCAB
    assert [e.clip_id for e in train.entries] == ["FSD50K.dev_audio/101", "FSD50K.dev_audio/102"]
    item = train[0]
    assert item["label"].dtype == torch.float32
    assert torch.equal(item["label"], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert item["waveform"].shape == (16000,)
    assert [e.clip_id for e in FSD50K(fsd, "val", clip_seconds=1.0).entries] == [
        "FSD50K.dev_audio/103"
    ]
    test = FSD50K(fsd, "test", clip_seconds=1.0)
    assert torch.equal(test[1]["label"], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_eval_crop_offset_and_spans(fsd):
    test = FSD50K(fsd, "test", clip_seconds=2.0, crop="center")
    item = test[0]  # 4 s clip, centre crop of 2 s -> offset 1 s
    assert item["offset"] == 16000
    assert torch.allclose(item["spans"][0], torch.tensor([0.5, 1.5]))
    assert torch.isnan(item["spans"][1:]).all()
    start = FSD50K(fsd, "test", clip_seconds=2.0, crop="start")[0]
    assert start["offset"] == 0 and torch.allclose(start["spans"][0], torch.tensor([1.5, 2.0]))
    short = test[1]  # 1 s clip padded to 2 s, centred
    assert short["offset"] == -8000 and torch.isnan(short["spans"]).all()
    assert torch.equal(short["waveform"][:8000], torch.zeros(8000))


def test_train_random_crop_recorded_and_per_epoch(fsd):
    train = FSD50K(fsd, "train", clip_seconds=1.0, seed=0)
    offsets = {train[(epoch, 0)]["offset"] for epoch in range(6)}
    assert len(offsets) > 1 and all(0 <= o <= 32000 for o in offsets)
    item = train[(2, 0)]
    assert item["clip_id"] == "FSD50K.dev_audio/101#e2"
    shift = item["offset"] / 16000
    expected = [(max(a - shift, 0.0), min(b - shift, 1.0)) for a, b in [(0.5, 1.0), (2.5, 2.9)]]
    expected = [e for e in expected if e[1] > e[0]]
    assert torch.isnan(item["spans"][len(expected) :]).all()
    for row, (lo, hi) in enumerate(expected):
        assert torch.allclose(item["spans"][row], torch.tensor([lo, hi]), atol=1e-4)
    same = FSD50K(fsd, "train", clip_seconds=1.0, seed=0)
    assert torch.equal(same[(2, 0)]["waveform"], item["waveform"])


def test_fsd_bad_inputs(fsd):
    gt = fsd / "FSD50K.ground_truth" / "dev.csv"
    gt.write_text(gt.read_text().replace("Guitar,Music", "Guitar,Banjo"))
    with pytest.raises(
        ValueError,
        match=r"clip 101 has label\(s\) \['Banjo'\] not in the "
        "vocabulary .*vocabulary.csv",
    ):
        FSD50K(fsd, "train")
    (fsd / "FSD50K.eval_audio" / "202.wav").unlink()
    with pytest.raises(ValueError, match="FSD50K.eval_audio/202.wav"):
        FSD50K(fsd, "test")
    with pytest.warns(UserWarning, match="skipped 1 bad file"):
        ds = FSD50K(fsd, "test", skip_bad_files=True)
    assert len(ds) == 1 and ds.skipped[0][0].endswith("202.wav")
    (fsd / "FSD50K.ground_truth" / "vocabulary.csv").unlink()
    with pytest.raises(FileNotFoundError, match="vocabulary file .*vocabulary.csv"):
        FSD50K(fsd, "test")


def test_folder_csv_multi_label(tmp_path):
    root = tmp_path / "user"
    (root / "clips").mkdir(parents=True)
    for k in range(4):
        sf.write(root / "clips" / f"c{k}.wav", tone(0.5 + 0.5 * k, 300, 8000), 8000)
    (root / "labels.csv").write_text(
        'path,label,split\nclips/c0.wav,"dog,bark",train\nclips/c1.wav,cat,train\n'
        "clips/c2.wav,dog,val\nclips/c3.wav,cat,test\n"
    )
    ds = FolderDataset(root, "train", task="multi_label", clip_seconds=1.0)
    assert ds.class_names == ["bark", "cat", "dog"]
    assert torch.equal(ds[0]["label"], torch.tensor([1.0, 0.0, 1.0]))
    assert ds[0]["waveform"].shape == (16000,)
    assert [e.clip_id for e in FolderDataset(root, "val", task="multi_label").entries] == [
        "clips/c2.wav"
    ]
    with pytest.raises(ValueError, match="c0.wav has several labels .* single_label"):
        FolderDataset(root, "train", task="single_label")
    with pytest.raises(ValueError, match="Speech Commands set"):
        FolderDataset(root, "train", classes="12", task="multi_label")


def test_folder_class_dirs_with_hash_split(tmp_path):
    root = tmp_path / "user"
    rels = []
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for k in range(15):
            sf.write(root / cls / f"{k}.wav", tone(0.3, 200, 16000), 16000)
            rels.append(f"{cls}/{k}.wav")
    splits = {
        s: [e.clip_id for e in FolderDataset(root, s, clip_seconds=0.5).entries]
        for s in ("train", "validation", "test")
    }
    # the documented rule, so a change of hash cannot silently move users' clips between splits
    rule = {0: "test", 1: "validation"}
    expected = {s: sorted(r for r in rels if rule.get(zlib.crc32(r.encode()) % 10, "train") == s)
                for s in splits}  # fmt: skip
    assert {s: sorted(ids) for s, ids in splits.items()} == expected
    assert [len(expected[s]) for s in ("train", "validation", "test")] == [24, 3, 3]
    assert all(hash_split(r) == s for s, ids in expected.items() for r in ids)
    item = FolderDataset(root, "train", clip_seconds=0.5)[0]
    assert isinstance(item["label"], int) and torch.isnan(item["spans"]).all()
    with pytest.raises(ValueError, match=r"label 'b' not among the classes \['a'\]"):
        FolderDataset(root, "train", classes="a")
