"""A valid wav whose file name is not UTF-8 (Latin-1 "café" from an old archive): Python holds
the name as surrogate escapes; soundfile is given the file system's bytes, so the audio loads,
and the datasets that hash names (folder splits, unknown-word subsampling) take it too. Before,
every read failed with "surrogates not allowed" (the file named, the reason wrong)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from distill.config import RecipeConfig
from distill.data import build_datamodule
from distill.data.audio import audio_info, check_headers, load_audio

LATIN1 = b"caf\xe9"  # not valid UTF-8


def write_latin1_wav(folder: Path, stem: bytes, data: np.ndarray, rate: int = 16000) -> str:
    """Write `data` to `folder/<stem>.wav` under a byte name; returns the name as Python lists it
    (surrogate escapes). Skips where the file system refuses names that are not UTF-8."""
    target = os.fsencode(folder) + b"/" + stem + b".wav"
    try:
        sf.write(target, data, rate)
    except (OSError, RuntimeError) as err:
        pytest.skip(f"this file system refuses names that are not UTF-8: {err}")
    (name,) = [n for n in os.listdir(folder) if os.fsencode(n) == stem + b".wav"]
    return str(folder / name)


def test_the_loader_reads_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    data = (0.3 * np.sin(np.arange(1600) / 10)).astype(np.float32)
    path = write_latin1_wav(tmp_path, LATIN1, data)
    assert "\udce9" in path  # the surrogate escape of byte 0xE9
    with pytest.raises(UnicodeEncodeError):
        path.encode()  # what soundfile did with it before
    assert audio_info(path).frames == 1600
    wave = load_audio(path, 16000)
    assert np.allclose(wave.numpy(), data, atol=1e-4)
    infos, skipped = check_headers([path], skip_bad_files=False)
    assert list(infos) == [path] and skipped == []


@pytest.mark.parametrize("name", ["folder", "speech_commands"])
def test_datasets_list_and_load_it(tiny_kws_bank: Path, tmp_path: Path, name: str) -> None:
    """A copy of the keyword bank where some clips are renamed to Latin-1 names: the dataset
    lists them and every one of them loads, in whichever split its name hashes to."""
    root = tmp_path / "bank"
    shutil.copytree(tiny_kws_bank, root, ignore=shutil.ignore_patterns("manifest.csv"))
    renamed = []
    for word in ("yes", "cat"):  # cat is an unknown word for the 12 Speech Commands classes
        for k, wav in enumerate(sorted((root / word).glob("*.wav"))[:4]):
            data, rate = sf.read(wav, dtype="float32")
            wav.unlink()
            stem = LATIN1 + f"_{k}_nohash_0".encode()
            renamed.append(write_latin1_wav(root / word, stem, data, rate))
    cfg = OmegaConf.structured(RecipeConfig).data
    cfg.name, cfg.root, cfg.clip_seconds, cfg.unknown_ratio = name, str(root), 1.0, 4.0
    if name == "folder":
        cfg.classes = "all"
    datamodule = build_datamodule(cfg)
    found = 0
    for split in ("train", "validation", "test"):
        dataset = datamodule.dataset(split)
        for index, entry in enumerate(dataset.entries):
            if entry.path in renamed:
                item = dataset[index]
                assert item["waveform"].abs().sum() > 0
                found += 1
    assert found == len(renamed)
