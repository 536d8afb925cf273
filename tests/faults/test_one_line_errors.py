"""Expected errors outside recipe values print one line naming the file, exit 2, and no
traceback (that only with `distill --debug`): damaged teacher files and caches, bad audio (also
when a data-loader worker meets it), recipes that are not YAML text, an OS error. Before, the
damaged files and the worker's error printed a traceback (the worker's inside its message)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from distill.cli import main
from distill.config import RecipeError

from .conftest import copy_of

Case = Callable[[dict, Path], tuple[list[str], str]]


def fit(setup: dict, tmp: Path, *overrides: str) -> list[str]:
    return ["fit", str(setup["recipe"]), *overrides, "--run-dir", str(tmp / "run")]


def teacher_config_not_json(setup: dict, tmp: Path) -> tuple[list[str], str]:
    teacher = copy_of(setup["teacher"], tmp)
    (teacher / "config.json").write_text("{bad")
    expected = f"{teacher / 'config.json'} is not valid JSON"
    return fit(setup, tmp, f"teacher.path={teacher}"), expected


def teacher_weights_damaged(setup: dict, tmp: Path) -> tuple[list[str], str]:
    teacher = copy_of(setup["teacher"], tmp)
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    args = fit(setup, tmp, f"teacher.path={teacher}", "teacher.cache=false")
    return args, f"{weights} is not a readable safetensors file"


def teacher_cache_index_damaged(setup: dict, tmp: Path) -> tuple[list[str], str]:
    teacher = copy_of(setup["teacher"], tmp)
    index = next(teacher.glob("cache/*/train.json"))
    index.write_text("{bad")
    return fit(setup, tmp, f"teacher.path={teacher}"), f"teacher cache index {index} is damaged"


def teacher_cache_records_truncated(setup: dict, tmp: Path) -> tuple[list[str], str]:
    teacher = copy_of(setup["teacher"], tmp)
    records = next(teacher.glob("cache/*/train.npy"))
    records.write_bytes(records.read_bytes()[:300])
    return fit(setup, tmp, f"teacher.path={teacher}"), f"teacher cache {records} is damaged"


def feature_cache_records_truncated(setup: dict, tmp: Path) -> tuple[list[str], str]:
    cache = copy_of(setup["feature_cache"], tmp)
    records = next(cache.glob("*/train.npy"))
    records.write_bytes(records.read_bytes()[:300])
    no_teacher = ("teacher.kind=none", "losses.logit_kd.weight=0")
    args = fit(setup, tmp, f"data.feature_cache_dir={cache}", *no_teacher)
    return args, f"feature cache {records} is damaged"


def nan_audio_in_a_loader_worker(setup: dict, tmp: Path) -> tuple[list[str], str]:
    """Every keyword clip holds a NaN sample: the headers pass, the first clip a worker reads
    fails (torch raises it again in the main process with the worker's traceback inside)."""
    bank = tmp / "bank"
    shutil.copytree(Path(setup["recipe_data"]["root"]), bank)
    for wav in bank.glob("*/*.wav"):
        if wav.parent.name == "_background_noise_":  # noise is read up front, not by workers
            continue
        data, rate = sf.read(wav, dtype="float32")
        data[len(data) // 2] = np.nan
        sf.write(wav, data, rate, subtype="FLOAT")
    overrides = (
        f"data.root={bank}",
        "teacher.kind=none",
        "losses.logit_kd.weight=0",
        "data.cache_features=false",
        "data.num_workers=1",
    )
    return fit(setup, tmp, *overrides), "holds 1 NaN/inf samples"


def unreadable_audio(setup: dict, tmp: Path) -> tuple[list[str], str]:
    bank = tmp / "bank"
    shutil.copytree(Path(setup["recipe_data"]["root"]), bank)
    broken = sorted(bank.glob("yes/*.wav"))[0]
    broken.write_bytes(b"RIFF\x00\x00garbage" * 3)
    no_teacher = ("teacher.kind=none", "losses.logit_kd.weight=0", "data.cache_features=false")
    args = fit(setup, tmp, f"data.root={bank}", *no_teacher)
    return args, f"cannot read audio file {broken}"


def recipe_not_utf8(setup: dict, tmp: Path) -> tuple[list[str], str]:
    recipe = tmp / "binary.yaml"
    recipe.write_bytes(b"name: \xff\xfe\x00junk\n")
    return ["fit", str(recipe)], f"recipe {recipe} is not UTF-8 text"


def recipe_is_a_folder(setup: dict, tmp: Path) -> tuple[list[str], str]:
    return ["fit", str(tmp)], f"recipe {tmp} is a folder"


def override_not_yaml(setup: dict, tmp: Path) -> tuple[list[str], str]:
    return fit(setup, tmp, "data.root=["), "override 'data.root=[': value is not valid YAML"


def run_dir_is_a_file(setup: dict, tmp: Path) -> tuple[list[str], str]:
    taken = tmp / "taken"
    taken.write_text("not a folder")
    args = ["fit", str(setup["recipe"]), "--run-dir", str(taken)]
    return args, f"{taken}"


CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        teacher_config_not_json,
        teacher_weights_damaged,
        teacher_cache_index_damaged,
        teacher_cache_records_truncated,
        feature_cache_records_truncated,
        nan_audio_in_a_loader_worker,
        unreadable_audio,
        recipe_not_utf8,
        recipe_is_a_folder,
        override_not_yaml,
        run_dir_is_a_file,
    )
}


@pytest.fixture()
def setup(faults_setup: dict) -> dict:
    data = yaml.safe_load(faults_setup["recipe"].read_text())["data"]
    return {**faults_setup, "recipe_data": data}


@pytest.mark.parametrize("case", sorted(CASES))
def test_expected_error_is_one_line_naming_the_file(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    args, expected = CASES[case](setup, tmp_path)
    rc = main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("distill: error: ")]
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err and "DataLoader worker" not in err, err[-3000:]
    assert len(errors) == 1 and expected in errors[0], err[-3000:]
    assert err.rstrip().endswith(errors[0])  # the last thing printed


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "binary.yaml"
    recipe.write_bytes(b"\xff\xfe")
    with pytest.raises(RecipeError, match="is not UTF-8 text"):
        main(["--debug", "fit", str(recipe)])
