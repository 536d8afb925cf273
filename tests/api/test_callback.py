"""TemporalKDCallback on a user's own LightningModule: the head trains during fit and is gone
afterwards, checkpoints hold exactly the user's keys, resuming restores the head."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from distill import TemporalKDCallback, UsageError, kd_loss
from tests.api.parts import Spotter, loader, tiny_teacher, trainer

HEAD = "terms.temporal_kd.head.query.weight"


def kd_callback(**options: Any) -> TemporalKDCallback:
    return TemporalKDCallback(
        tiny_teacher(),
        {"temporal_kd": 1.0, "logit_kd": 0.5},
        student="net",
        tap="encoder",
        tap_layout="BCT",
        **options,
    )


class HeadProbe(pl.Callback):
    """Records the KD head and the module's state-dict keys as training starts and ends."""

    def __init__(self, kd: TemporalKDCallback) -> None:
        self.kd = kd
        self.seen: dict[str, Any] = {}

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.seen["start"] = self.kd.kd.state_dict()[HEAD].clone()
        self.seen["keys"] = set(pl_module.state_dict())
        self.seen["child"] = "distill_kd" in dict(pl_module.named_children())

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.seen["end"] = self.kd.kd.state_dict()[HEAD].clone()


def hooks_left(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]


def test_fit_trains_the_head_and_leaves_only_the_users_model(tmp_path: Path) -> None:
    model, kd = Spotter(), kd_callback()
    probe = HeadProbe(kd)
    teacher_before = {k: v.clone() for k, v in kd.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.net.state_dict().items()}
    user_keys = set(Spotter().state_dict())
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    trainer(tmp_path, 2, callbacks=[kd, probe, ckpt], enable_checkpointing=True).fit(
        model, loader()
    )
    # during fit: a submodule of the user's module, yet out of its state dict; it trained
    assert probe.seen["child"] and probe.seen["keys"] == user_keys
    assert not torch.equal(probe.seen["start"], probe.seen["end"])
    # after fit: the user's architecture alone, no hook, the teacher untouched
    assert set(model.state_dict()) == user_keys and not hasattr(model, "distill_kd")
    assert hooks_left(model) == [] and hooks_left(kd.teacher) == []
    assert kd.kd is None
    weight = "classifier.weight"
    assert not torch.equal(model.net.state_dict()[weight], student_before[weight])
    for key, value in kd.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    # the checkpoint: exactly the user's keys; the head in the callback's state
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert set(saved["state_dict"]) == user_keys
    (state,) = [v for k, v in saved["callbacks"].items() if "TemporalKDCallback" in k]
    torch.testing.assert_close(state["head"][HEAD], probe.seen["end"])
    # and it loads into the user's class as it is (strict)
    Spotter.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt", weights_only=True)


def test_resuming_restores_the_head(tmp_path: Path) -> None:
    first = kd_callback()
    probe = HeadProbe(first)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    trainer(tmp_path, 2, callbacks=[first, probe, ckpt], enable_checkpointing=True).fit(
        Spotter(), loader()
    )
    again = kd_callback()
    resumed = HeadProbe(again)
    trainer(tmp_path, 3, callbacks=[again, resumed]).fit(
        Spotter(), loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt", weights_only=True
    )
    torch.testing.assert_close(resumed.seen["start"], probe.seen["end"])


def test_an_optimizer_without_the_head_is_refused(tmp_path: Path) -> None:
    model = Spotter(head_in_optimizer=False)
    with pytest.raises(UsageError, match=r"configure_optimizers .*KD head"):
        trainer(tmp_path, 1, callbacks=[kd_callback()]).fit(model, loader())
    assert not hasattr(model, "distill_kd") and hooks_left(model) == []


def test_kd_loss_needs_the_callback(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="exactly one TemporalKDCallback"):
        trainer(tmp_path, 1).fit(Spotter(), loader())
    with pytest.raises(UsageError, match="inside trainer.fit"):
        kd_callback().distill_loss(torch.randn(1, 16000), torch.randn(1, 3))
    with pytest.raises(UsageError, match="exactly one"):
        kd_loss(Spotter(), torch.randn(1, 16000), torch.randn(1, 3))


def test_a_name_the_module_already_uses_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="already has an attribute 'net'"):
        trainer(tmp_path, 1, callbacks=[kd_callback(name="net")]).fit(Spotter(), loader())


def test_the_callback_fits_both_lightning_packages() -> None:
    kd = kd_callback()
    assert isinstance(kd, pl.Callback)
    if importlib.util.find_spec("lightning") is not None:
        import lightning.pytorch

        assert isinstance(kd, lightning.pytorch.Callback)
