"""SpeechCommands: items, the 12-class mapping, splits, class sets and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from distill.data.audio import AudioFileError
from distill.data.speech_commands import CORE_WORDS, V1_WORDS, V2_WORDS, SpeechCommands, bank_version

from .fakes import make_speech_commands, make_synth_kws_bank

WORDS = ["yes", "no", "cat", "dog"]
SPEAKERS = ["aa", "bb", "cc", "dd", "ee"]


@pytest.fixture()
def sc(tmp_path):
    root = tmp_path / "sc"
    splits = make_speech_commands(root, WORDS, SPEAKERS)
    return root, splits


def test_twelve_class_mapping_unknown_and_silence(sc):
    root, splits = sc
    # the 12-class task needs every core word folder; give the other 8 an empty-looking clip
    for w in CORE_WORDS[2:]:
        (root / w).mkdir()
    ds = SpeechCommands(root, "train", classes="12")
    assert ds.class_names == CORE_WORDS + ["_unknown_", "_silence_"]
    n_words = len(splits["train"])
    n_silence = math.ceil(n_words / 10)
    assert len(ds) == n_words + n_silence
    labels = {}
    for i in range(len(ds)):
        item = ds[i]
        assert item["waveform"].shape == (16000,) and item["waveform"].dtype == torch.float32
        assert item["spans"].shape == (8, 2) and item["index"] == i
        labels[item["clip_id"]] = item["label"]
        if item["clip_id"].startswith("_silence_/"):
            assert item["label"] == 11 and torch.isnan(item["spans"]).all()
            assert item["waveform"].abs().max() > 0
    assert labels["yes/aa_nohash_0.wav"] == 0 and labels["no/bb_nohash_0.wav"] == 1
    assert labels["cat/aa_nohash_0.wav"] == 10 and labels["dog/cc_nohash_0.wav"] == 10
    assert sum(cid.startswith("_silence_") for cid in labels) == n_silence
    # silence is fixed per split: a second construction gives the same audio
    again = SpeechCommands(root, "train", classes="12")
    assert torch.equal(again[len(ds) - 1]["waveform"], ds[len(ds) - 1]["waveform"])


def test_split_files_are_honoured(sc):
    root, splits = sc
    for split in ("train", "validation", "test"):
        ds = SpeechCommands(root, split, classes="all")
        assert sorted(e.clip_id for e in ds.entries) == sorted(splits[split])
    assert SpeechCommands(root, "val", classes="all").split == "validation"
    speakers = [
        SpeechCommands(root, s, classes="all").speakers() for s in ("train", "validation", "test")
    ]
    assert not (speakers[0] & speakers[1]) and not (speakers[0] & speakers[2])


def test_spans_whole_clip_and_short_clip_padding(sc):
    root, _ = sc
    ds = SpeechCommands(root, "train", classes="all", crop="center")
    for i in range(len(ds)):
        item = ds[i]
        dur = ds.entries[i].events[0][1]
        # centred padding: offset = -(pad // 2); span = the keyword's place in the clip
        assert item["offset"] == -((16000 - round(dur * 16000)) // 2)
        start = -item["offset"] / 16000
        assert torch.allclose(item["spans"][0], torch.tensor([start, start + dur]), atol=1e-4)
        assert torch.isnan(item["spans"][1:]).all()


def test_manifest_spans(tmp_path):
    root = tmp_path / "bank"
    make_synth_kws_bank(root, WORDS, SPEAKERS, onset=0.25, offset=0.6)
    ds = SpeechCommands(root, "test", classes="all")
    item = ds[0]
    assert torch.allclose(item["spans"][0], torch.tensor([0.25, 0.6]))


def test_class_sets_and_version(sc):
    root, _ = sc
    assert SpeechCommands(root, "train", classes="all").class_names == sorted(WORDS)
    assert SpeechCommands(root, "train", classes="yes,_unknown_").num_classes == 2
    assert bank_version(V2_WORDS) == "v2" and bank_version(V1_WORDS) == "v1"
    assert len(V1_WORDS) == 30 and len(V2_WORDS) == 35
    assert bank_version(WORDS) == "custom"
    with pytest.raises(ValueError, match="classes '35' needs .* lacks backward"):
        SpeechCommands(root, "train", classes="35")
    with pytest.raises(ValueError, match="classes marvin have no folder"):
        SpeechCommands(root, "train", classes="yes,marvin")


def test_label_not_in_classes_without_unknown(sc):
    root, _ = sc
    with pytest.raises(
        ValueError,
        match="word 'cat' of .*cat/aa_nohash_0.wav is not among the classes .* no _unknown_ class",
    ):
        SpeechCommands(root, "train", classes=["yes", "no"])


def test_missing_split_file(sc):
    root, _ = sc
    (root / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="split file .*testing_list.txt does not exist"):
        SpeechCommands(root, "train", classes="all")


def test_empty_dataset(tmp_path):
    root = tmp_path / "sc"
    make_speech_commands(root, ["yes"], ["aa", "bb"], val_speakers=1, test_speakers=1)
    with pytest.raises(ValueError, match="the train split has no clips"):
        SpeechCommands(root, "train", classes="all")


def test_listed_file_missing(sc):
    root, _ = sc
    with open(root / "validation_list.txt", "a") as fh:
        fh.write("yes/zz_nohash_9.wav\n")
    with pytest.raises(FileNotFoundError, match="yes/zz_nohash_9.wav is listed in .*validation"):
        SpeechCommands(root, "train", classes="all")


def test_bad_files_raise_or_are_reported(sc):
    root, _ = sc
    (root / "yes" / "aa_nohash_0.wav").write_bytes(b"corrupt!")
    sf.write(root / "no" / "aa_nohash_0.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFileError, match="no/aa_nohash_0.wav is empty"):
        SpeechCommands(root, "train", classes="all")
    with pytest.warns(UserWarning, match="skipped 2 bad file"):
        ds = SpeechCommands(root, "train", classes="all", skip_bad_files=True)
    names = sorted(p.split("sc/")[-1] for p, _ in ds.skipped)
    assert names == ["no/aa_nohash_0.wav", "yes/aa_nohash_0.wav"]
    assert all("aa_nohash_0" not in e.clip_id for e in ds.entries if e.clip_id[:3] in "yesno")


def test_nan_file_fails_at_load_or_is_left_out_when_built(sc):
    root, _ = sc
    data = np.zeros(16000, np.float32)
    data[5] = np.inf
    sf.write(root / "cat" / "aa_nohash_0.wav", data, 16000, subtype="FLOAT")
    ds = SpeechCommands(root, "train", classes="all")
    i = next(i for i, e in enumerate(ds.entries) if e.clip_id == "cat/aa_nohash_0.wav")
    with pytest.raises(AudioFileError, match="cat/aa_nohash_0.wav holds 1 NaN/inf"):
        ds[i]
    with pytest.warns(UserWarning, match="cat/aa_nohash_0.wav"):  # when built, not at load
        skipping = SpeechCommands(root, "train", classes="all", skip_bad_files=True)
    assert len(skipping) == len(ds) - 1 and len(skipping.skipped) == 1
    ids = [skipping[k]["clip_id"] for k in range(len(skipping))]
    assert "cat/aa_nohash_0.wav" not in ids and len(set(ids)) == len(ids)


def test_unknown_is_subsampled_to_the_mean_keyword_class(tmp_path) -> None:
    from distill.data.speech_commands import SpeechCommands

    root = tmp_path / "sc"
    words = ["yes", "no", "cat", "dog", "bird", "tree", "wow"]
    make_speech_commands(root, words, [f"{i:08x}" for i in range(8)], noise_files=1)
    kept = SpeechCommands(root, "train", classes="yes,no,_unknown_", unknown_ratio=1.0)
    unknown = kept.class_names.index("_unknown_")
    n_unknown = sum(e.target == unknown for e in kept.entries)
    assert n_unknown == 6  # 6 train speakers per keyword -> mean keyword class = 6
    again = SpeechCommands(root, "train", classes="yes,no,_unknown_", unknown_ratio=1.0)
    assert [e.clip_id for e in again.entries] == [e.clip_id for e in kept.entries]
    everything = SpeechCommands(root, "train", classes="yes,no,_unknown_", unknown_ratio=0.0)
    assert sum(e.target == unknown for e in everything.entries) == 5 * 6
