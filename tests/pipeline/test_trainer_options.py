"""Trainer options of a recipe (docs/recipes.md, "Trainer options"), each in a real tiny fit:
max_steps, gradient accumulation, val_check_interval, trainer.kwargs, and the callbacks of
`trainer.callbacks` (early stopping, learning-rate monitor, EMA / SWA, a class by dotted path),
with EMA's interplay with best.ckpt, the test scores, the saved student and `--resume`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from distill.config import RecipeConfig, RecipeError, load_recipe
from distill.errors import BadValueError, MissingExtraError, UsageError
from distill.pipeline.artifacts import STUDENT_FILE, load_student
from distill.pipeline.fit import fit
from distill.pipeline.session import build_loggers, build_trainer
from distill.pipeline.trainer_callbacks import build_callbacks

BATCHES = 4  # training batches an epoch: 32 clips in batches of 8
HERE = "tests.pipeline.test_trainer_options"


class ValidationLog(pl.Callback):
    """Appends the global step of every validation (sanity checks left out) to `path`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            with open(self.path, "a") as fh:
                fh.write(f"{trainer.global_step}\n")


class WeightRecorder(pl.Callback):
    """The student's first weight matrix after every training batch (raw, as trained)."""

    def __init__(self) -> None:
        self.after_batch: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.after_batch.append(first_weight(pl_module.student.state_dict()).to("cpu", copy=True))


def first_weight(state: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
    return next(v for k, v in state.items() if k.startswith(prefix) and v.ndim > 1)


def recipe(bank: Path, tmp: Path, **trainer: Any) -> DictConfig:
    """TC-ResNet8 without a teacher, 4 batches an epoch, one epoch; `trainer` keys on top."""
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name = "options"
    cfg.run_dir = str(tmp / "runs")
    cfg.data.root = str(bank)
    cfg.data.clip_seconds = 1.0
    cfg.data.batch_size = 8
    cfg.data.limit_train = 8 * BATCHES
    cfg.data.limit_eval = 8
    cfg.teacher.kind = "none"
    cfg.trainer.max_epochs = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_n_steps = 1
    cfg.logger.wandb = False
    for key, value in trainer.items():
        cfg.trainer[key] = value
    return cfg


def validations(run_dir: str | Path) -> list[int]:
    """The step column of each validation row of the run's metrics.csv."""
    with open(Path(run_dir) / "csv" / "metrics.csv", newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh) if row.get("val/acc")]


def checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def plain(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One epoch without any trainer option: what the options are compared with."""
    return fit(recipe(tiny_kws_bank, tmp_path_factory.mktemp("plain")))


def test_the_plain_run_steps_every_batch_and_validates_once(plain: Any) -> None:
    assert checkpoint(Path(plain.run_dir) / "checkpoints" / "last.ckpt")["global_step"] == BATCHES
    assert len(validations(plain.run_dir)) == 1


def test_max_steps_stops_there_and_validates_the_last_weights(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    results = fit(recipe(tiny_kws_bank, tmp_path, max_epochs=5, max_steps=BATCHES + 2))
    last = checkpoint(Path(results.run_dir) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == BATCHES + 2
    # the end of epoch 0, then the stop inside epoch 1 (Lightning alone would skip that one)
    assert len(validations(results.run_dir)) == 2
    # max_epochs comes first: the step limit is never reached
    results = fit(recipe(tiny_kws_bank, tmp_path / "epochs", max_epochs=1, max_steps=100))
    assert checkpoint(Path(results.run_dir) / "checkpoints" / "last.ckpt")["global_step"] == BATCHES


def test_accumulating_two_batches_halves_the_optimizer_steps(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    results = fit(recipe(tiny_kws_bank, tmp_path, accumulate_grad_batches=2))
    last = checkpoint(Path(results.run_dir) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == BATCHES // 2
    assert len(validations(results.run_dir)) == 1


def test_val_check_interval_validates_every_n_batches(tiny_kws_bank: Path, tmp_path: Path) -> None:
    results = fit(recipe(tiny_kws_bank, tmp_path, val_check_interval=2))
    assert len(validations(results.run_dir)) == BATCHES // 2
    # a fraction of the epoch, Lightning's float form
    results = fit(recipe(tiny_kws_bank, tmp_path / "half", val_check_interval=0.5))
    assert len(validations(results.run_dir)) == 2


def test_early_stopping_stops_on_a_flat_metric(tiny_kws_bank: Path, tmp_path: Path) -> None:
    # accuracy cannot improve by 1.0: flat for the callback, which stops after `patience` epochs
    entry = {"name": "early_stopping", "init_args": {"patience": 1, "min_delta": 1.0}}
    results = fit(recipe(tiny_kws_bank, tmp_path, max_epochs=6, callbacks=[entry]))
    assert results.epochs == 2
    assert len(validations(results.run_dir)) == 2


def test_early_stopping_watches_the_recipe_metric_by_default(tiny_kws_bank: Path) -> None:
    cfg = recipe(tiny_kws_bank, Path("unused"), callbacks=["early_stopping"])
    (stopper,) = build_callbacks(cfg, "val/mAP")
    assert (stopper.monitor, stopper.mode) == ("val/mAP", "max")


def test_kwargs_and_a_callback_by_dotted_path_reach_the_trainer(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    log = tmp_path / "validations.txt"
    entry = {"class_path": f"{HERE}.ValidationLog", "init_args": {"path": str(log)}}
    cfg = recipe(
        tiny_kws_bank,
        tmp_path,
        max_epochs=2,
        callbacks=[entry, "lr_monitor"],
        kwargs={"check_val_every_n_epoch": 2, "num_sanity_val_steps": 0},
    )
    results = fit(cfg)
    assert log.read_text().split() == [str(2 * BATCHES)]  # the second epoch's end only
    assert len(validations(results.run_dir)) == 1
    with open(Path(results.run_dir) / "csv" / "metrics.csv", newline="") as fh:
        rates = [row["lr-AdamW"] for row in csv.DictReader(fh) if row.get("lr-AdamW")]
    assert len(rates) == 2 * BATCHES
    trainer = build_trainer(cfg, tmp_path / "built")
    assert (trainer.check_val_every_n_epoch, trainer.num_sanity_val_steps) == (2, 0)


def test_ema_weights_are_validated_tested_and_saved(tiny_kws_bank: Path, tmp_path: Path) -> None:
    from distill.pipeline.evaluate import evaluate_checkpoint

    decay = 0.5
    ema = {"name": "ema", "init_args": {"decay": decay}}
    cfg = recipe(tiny_kws_bank, tmp_path, callbacks=[ema])
    recorder = WeightRecorder()
    results = fit(cfg, extra_callbacks=[recorder])
    assert len(recorder.after_batch) == BATCHES
    expected = recorder.after_batch[0]
    for raw in recorder.after_batch[1:]:
        expected = decay * expected + (1 - decay) * raw
    best = checkpoint(results.best_checkpoint)
    averaged = first_weight(best["state_dict"], "student.")
    torch.testing.assert_close(averaged, expected)
    raw = first_weight(best["current_model_state"], "student.")
    assert torch.equal(raw, recorder.after_batch[-1])
    assert not torch.allclose(averaged, raw)
    # the saved student is the average
    model, _ = load_student(Path(results.run_dir) / STUDENT_FILE)
    assert torch.equal(first_weight(model.state_dict()), averaged)
    # fit's test scores are the average's, not the raw weights'
    scored = evaluate_checkpoint(results.best_checkpoint, split="test")["metrics"]
    assert scored["test/loss"] == pytest.approx(results.test["test/loss"], rel=1e-5)
    raw_path = tmp_path / "raw.ckpt"
    torch.save({**best, "state_dict": best["current_model_state"]}, raw_path)
    raw_scored = evaluate_checkpoint(raw_path, split="test")["metrics"]
    assert raw_scored["test/loss"] != pytest.approx(results.test["test/loss"], rel=1e-5)
    # validation saw the average: best.ckpt's score is its weights' score
    val = evaluate_checkpoint(results.best_checkpoint, split="val")["metrics"]
    assert val["val/acc"] == pytest.approx(results.best_val)


def test_ema_resumes_exactly_and_a_resume_without_it_is_refused(
    tiny_kws_bank: Path, tmp_path: Path
) -> None:
    def two_epochs(**trainer: Any) -> DictConfig:
        cfg = recipe(tiny_kws_bank, tmp_path, deterministic=True, **trainer)
        cfg.optim.schedule = "constant"  # the schedule would depend on max_epochs
        return cfg

    ema = [{"name": "ema", "init_args": {"decay": 0.7}}]
    whole = fit(two_epochs(max_epochs=2, callbacks=ema), run_dir=tmp_path / "whole")
    split_dir = tmp_path / "split"
    fit(two_epochs(max_epochs=1, callbacks=ema), run_dir=split_dir)
    resumed = fit(two_epochs(max_epochs=2, callbacks=ema), run_dir=split_dir, resume=True)
    for name in ("last.ckpt", "best.ckpt"):
        a = checkpoint(Path(whole.run_dir) / "checkpoints" / name)
        b = checkpoint(Path(resumed.run_dir) / "checkpoints" / name)
        assert a["global_step"] == b["global_step"]
        for key in ("state_dict", "current_model_state"):
            assert a[key].keys() == b[key].keys()
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), (name, key)
    assert resumed.test == whole.test
    with pytest.raises(UsageError, match="written with weight averaging"):
        fit(two_epochs(max_epochs=3), run_dir=split_dir, resume=True)


def test_the_average_copies_the_module_without_its_trainer_and_teacher() -> None:
    from distill.pipeline.trainer_callbacks import EMA

    module = pl.LightningModule()
    module.net = torch.nn.Linear(3, 2)
    trainer, teacher = object(), torch.nn.Linear(100, 100)
    module._trainer = trainer
    object.__setattr__(module, "teacher_source", teacher)
    ema = EMA()
    ema.setup(trainer, module, "fit")
    copy = ema._average_model.module
    assert copy._trainer is None and copy.teacher_source is None
    assert module._trainer is trainer and module.teacher_source is teacher
    assert torch.equal(copy.net.weight, module.net.weight)


def test_swa_is_the_mean_of_the_epoch_end_weights(tiny_kws_bank: Path, tmp_path: Path) -> None:
    swa = [{"name": "swa", "init_args": {"start_epoch": 1}}]
    recorder = WeightRecorder()
    cfg = recipe(tiny_kws_bank, tmp_path, max_epochs=3, callbacks=swa)
    results = fit(cfg, extra_callbacks=[recorder])
    ends = [recorder.after_batch[e * BATCHES + BATCHES - 1] for e in range(3)]
    last = checkpoint(Path(results.run_dir) / "checkpoints" / "last.ckpt")
    averaged = first_weight(last["state_dict"], "student.")
    torch.testing.assert_close(averaged, (ends[1] + ends[2]) / 2)
    assert torch.equal(first_weight(last["current_model_state"], "student."), ends[2])


# -- refused before any work ----------------------------------------------------------------------


@pytest.fixture()
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "data": {"root": "/data"}}))
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "trainer.kwargs.max_epochs=3",
            "key 'trainer.kwargs.max_epochs': set it with the typed key trainer.max_epochs instead",
        ),
        (
            "trainer.kwargs.enable_progress_bar=false",
            "key 'trainer.kwargs.enable_progress_bar': set it with trainer.progress_bar, not in "
            "trainer.kwargs",
        ),
        ("trainer.kwargs.logger=false", "key 'trainer.kwargs.logger': choose loggers in the"),
        ("trainer.kwargs.callbacks=[]", "key 'trainer.kwargs.callbacks': list them under"),
        ("trainer.kwargs.plugins=[]", "key 'trainer.kwargs.plugins': distill sets it"),
        ("trainer.kwargs.default_root_dir=/x", "key 'trainer.kwargs.default_root_dir': distill"),
        (
            "trainer.kwargs.use_distributed_sampler=true",
            "key 'trainer.kwargs.use_distributed_sampler': distill sets it",
        ),
        (
            "trainer.kwargs.num_sanity_val_step=0",
            "key 'trainer.kwargs.num_sanity_val_step' is not an argument of the Lightning "
            "Trainer; did you mean 'num_sanity_val_steps'?",
        ),
    ],
)
def test_bad_trainer_kwargs_are_refused_in_one_line(
    recipe_file: Path, override: str, message: str
) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe_file), [override])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_trainer_kwargs_and_typed_options_load(recipe_file: Path) -> None:
    cfg = load_recipe(
        str(recipe_file),
        [
            "trainer.kwargs.num_sanity_val_steps=0",
            "trainer.kwargs.benchmark=true",
            "trainer.max_steps=-1",
            "trainer.val_check_interval=3",
        ],
    )
    assert cfg.trainer.kwargs == {"num_sanity_val_steps": 0, "benchmark": True}
    assert cfg.trainer.val_check_interval == 3 and isinstance(cfg.trainer.val_check_interval, int)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "early_stoping",
            "trainer.callbacks[0]: unknown callback 'early_stoping'; built-in: early_stopping, "
            "ema, lr_monitor, swa, weight_averaging (or give class_path: ",
        ),
        (
            {"name": "early_stopping", "init_args": {"patiense": 3}},
            "trainer.callbacks[0].init_args: early_stopping takes no argument 'patiense' (it "
            "takes: monitor, min_delta, patience,",
        ),
        (
            {"name": "early_stopping", "init_args": {"mode": "maxx"}},
            "trainer.callbacks[0] (early_stopping): `mode` can be",
        ),
        ({"name": "ema", "init_args": {"decay": 1.5}}, "trainer.callbacks[0] (ema): decay must be"),
        ({"name": "swa", "init_args": {"start_epoch": 1.5}}, "trainer.callbacks[0] (swa): start_"),
        (
            {"class_path": "no_such_pkg.Callback"},
            "trainer.callbacks[0].class_path: cannot import 'no_such_pkg.Callback' (No module",
        ),
        (
            {"class_path": "collections.OrderedDict"},
            "trainer.callbacks[0].class_path: 'collections.OrderedDict' is not a "
            "pytorch_lightning Callback class",
        ),
        (
            {"class_path": f"{HERE}.ValidationLog", "init_args": {"nope": 1}},
            f"trainer.callbacks[0].init_args: {HERE}.ValidationLog takes no argument 'nope'",
        ),
        (
            {"class_path": f"{HERE}.ValidationLog"},
            f"trainer.callbacks[0].init_args: {HERE}.ValidationLog: missing a required argument",
        ),
        ({"name": "ema", "class_path": "a.B"}, "trainer.callbacks[0]: give either name"),
        ({"name": "ema", "args": {}}, "trainer.callbacks[0]: unknown key 'args'"),
        (3, "trainer.callbacks[0]: an entry is a built-in name or a mapping"),
    ],
)
def test_bad_callback_entries_are_refused_before_any_work(
    tiny_kws_bank: Path, tmp_path: Path, entry: Any, message: str
) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path, callbacks=["lr_monitor", entry])
    message = message.replace("callbacks[0]", "callbacks[1]")
    with pytest.raises(BadValueError) as err:
        fit(cfg)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()  # no run directory, nothing loaded


def test_a_saved_run_builds_no_callback(tiny_kws_bank: Path, tmp_path: Path) -> None:
    """A checkpoint's recipe names a callback class; reading the checkpoint back (eval) never
    imports it: callbacks are built from the recipe given to `distill fit` only."""
    from distill.pipeline.evaluate import evaluate_checkpoint

    results = fit(recipe(tiny_kws_bank, tmp_path))
    saved = checkpoint(results.best_checkpoint)
    entry = {"class_path": "tests.pipeline.not_a_module.Planted"}
    saved["hyper_parameters"]["cfg"]["trainer"]["callbacks"] = [entry]
    planted = tmp_path / "planted.ckpt"
    torch.save(saved, planted)
    evaluate_checkpoint(planted, split="val")
    assert "tests.pipeline.not_a_module" not in sys.modules


# -- optional loggers --------------------------------------------------------------------------


@pytest.mark.parametrize(("logger", "module"), [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_logger_without_its_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logger: str, module: str
) -> None:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.logger.wandb = False
    cfg.logger[logger] = True
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    extra = rf"pip install 'temporal-distill\[{logger}\]'"
    with pytest.raises(MissingExtraError, match=extra):
        build_loggers(cfg, tmp_path)


def test_a_missing_logger_extra_stops_fit_before_any_work(
    tiny_kws_bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = recipe(tiny_kws_bank, tmp_path)
    cfg.logger.wandb = True
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError, match=r"^the wandb logger \(logger.wandb=true"):
        fit(cfg)
    assert not (tmp_path / "runs").exists()


def test_the_qat_stage_has_no_step_limit(tiny_kws_bank: Path) -> None:
    from distill.deploy.qat import qat_config

    cfg = qat_config(recipe(tiny_kws_bank, Path("unused"), max_steps=5))
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (-1, cfg.qat.epochs)


class Interrupt(RuntimeError):
    pass


class StopAtBatch(pl.Callback):
    """Raises at the start of training batch `batch_idx` of the first epoch (a crash)."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == self.batch_idx:
            raise Interrupt(f"stopped at batch {batch_idx}")


def test_accumulation_resumes_exactly_mid_epoch(tiny_kws_bank: Path, tmp_path: Path) -> None:
    """last.ckpt is never taken inside an accumulation, whose summed gradients it cannot hold."""
    cfg = recipe(tiny_kws_bank, tmp_path, max_epochs=2, accumulate_grad_batches=2)
    cfg.trainer.deterministic = True
    whole = fit(cfg, run_dir=tmp_path / "whole")
    run_dir = tmp_path / "crashed"
    with pytest.raises(Interrupt):
        fit(cfg, run_dir=run_dir, checkpoint_every_n_steps=1, extra_callbacks=[StopAtBatch(3)])
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 1
    resumed = fit(cfg, run_dir=run_dir, resume=True, checkpoint_every_n_steps=1)
    a = checkpoint(Path(whole.run_dir) / "checkpoints" / "last.ckpt")["state_dict"]
    b = checkpoint(Path(resumed.run_dir) / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
