"""`student.init_from`: training starts from a saved student's weights, or stops with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

from distill.errors import BadValueError, MissingFileError
from distill.pipeline.artifacts import STUDENT_FILE
from distill.pipeline.fit import fit
from tests.helpers.recipes import tiny_recipe


class _StartingWeights(pl.Callback):
    """The student's weights when training starts (after any initialisation)."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.state = {k: v.detach().clone() for k, v in module.student.state_dict().items()}


def _plain(root: Path, tmp: Path, run: str):
    cfg = tiny_recipe(root, tmp)
    cfg.teacher.kind = "none"
    cfg.trainer.max_steps = 2
    cfg.run_dir = str(tmp / run)
    return cfg


@pytest.fixture(scope="module")
def saved_run(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("init_from")
    return Path(fit(_plain(tiny_kws_bank, tmp, "first")).run_dir)


def test_training_starts_from_the_saved_students_weights_on_longer_clips(
    saved_run: Path, tiny_kws_bank: Path, tmp_path: Path
) -> None:
    saved = load_file(str(saved_run / STUDENT_FILE))
    for source in (saved_run, saved_run / STUDENT_FILE):  # a run directory or the file itself
        cfg = _plain(tiny_kws_bank, tmp_path, f"second_{len(str(source))}")
        cfg.data.clip_seconds = 3.0  # the use case: a student of short clips fine-tuned on long
        cfg.student.init_from = str(source)
        start = _StartingWeights()
        fit(cfg, extra_callbacks=[start])
        assert start.state.keys() == saved.keys()
        for key, value in saved.items():
            assert torch.equal(start.state[key], value), key
    fresh = _StartingWeights()
    fit(_plain(tiny_kws_bank, tmp_path, "fresh"), extra_callbacks=[fresh])
    assert not all(torch.equal(fresh.state[k], v) for k, v in saved.items())


@pytest.mark.parametrize(
    ("setting", "value", "key"),
    [
        ("name", "ds_cnn_s", "name"),
        ("kwargs", {"causal": True}, "kwargs"),
    ],
)
def test_a_student_of_another_architecture_is_refused_naming_the_key(
    saved_run: Path, tiny_kws_bank: Path, tmp_path: Path, setting: str, value, key: str
) -> None:
    cfg = _plain(tiny_kws_bank, tmp_path, "other")
    cfg.student[setting] = value
    cfg.student.init_from = str(saved_run)
    refusal = rf"student.init_from=.*student.safetensors: its {key} "
    with pytest.raises(BadValueError, match=refusal):
        fit(cfg)


def test_a_missing_student_is_refused_naming_the_path(tiny_kws_bank: Path, tmp_path: Path) -> None:
    cfg = _plain(tiny_kws_bank, tmp_path, "missing")
    cfg.student.init_from = str(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match=r"student.init_from=.*nowhere: no student file"):
        fit(cfg)
