"""One run session, set up the same way by teach, fit and qat: the run directory, the seed, the
datamodule, the recipe's teacher and where the module's teacher outputs and features come from,
the loggers and the Trainer."""

from __future__ import annotations

import netrc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from distill.caches.feature_cache import attach_feature_cache
from distill.caches.teacher_cache import attach_teacher
from distill.config import to_yaml
from distill.core.teacher_source import check_class_names, load_teacher_for
from distill.errors import BadValueError, UsageError
from distill.files import write_text

RUN_DIR_ENV = "DISTILL_RUN_DIR"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all ranks, dataloader workers); optionally deterministic."""
    pl.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def make_run_dir(cfg: DictConfig, run_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Create the run directory (default `<run_dir>/<name>/<timestamp>`) holding config.yaml.

    A given directory that already holds a run (checkpoints or results) is refused unless
    `resume`, so two runs never mix their checkpoints and logs.
    """
    if run_dir is not None and not resume and os.environ.get("LOCAL_RANK", "0") == "0":
        held = [p for p in ("checkpoints", "results.json") if (Path(run_dir) / p).exists()]
        if held:
            raise FileExistsError(
                f"run directory {run_dir} already holds a run ({', '.join(held)}): continue it "
                "with --resume, or choose another --run-dir"
            )
    if run_dir is None and os.environ.get("LOCAL_RANK", "0") != "0":
        run_dir = os.environ.get(RUN_DIR_ENV)  # a DDP child joins the run its rank 0 created
    if run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.run_dir) / cfg.name / stamp
        suffix = 1
        while run_dir.exists():
            run_dir = Path(cfg.run_dir) / cfg.name / f"{stamp}-{suffix}"
            suffix += 1
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def save_config(cfg: DictConfig, path: Path) -> None:
    """Write the resolved recipe atomically."""
    write_text(path, to_yaml(cfg))


def wandb_is_set_up() -> bool:
    """Whether the user configured wandb credentials (env key or netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return auth is not None


def resolve_wandb_mode(mode: str) -> str:
    """'online' only when asked for or when the user has set wandb up; otherwise 'offline'."""
    env_mode = os.environ.get("WANDB_MODE")
    if mode == "auto":
        if env_mode in ("offline", "online", "disabled"):
            return env_mode
        return "online" if wandb_is_set_up() else "offline"
    if mode == "online" and not wandb_is_set_up():
        raise UsageError(
            "logger.wandb_mode=online but wandb is not set up (no WANDB_API_KEY and no "
            "api.wandb.ai entry in ~/.netrc): run `wandb login`, or use logger.wandb_mode=offline "
            "or logger.wandb=false"
        )
    return mode


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[pl.loggers.Logger]:
    """Loggers named by the recipe: CSV always, TensorBoard and wandb on request."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    log_cfg = cfg.logger
    loggers: list[pl.loggers.Logger] = [CSVLogger(save_dir=str(run_dir), name="", version="csv")]
    if log_cfg.tensorboard:
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard"))
    if log_cfg.wandb:
        mode = resolve_wandb_mode(log_cfg.wandb_mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbLogger(
                project=log_cfg.wandb_project,
                name=f"{cfg.name}-{run_dir.name}",
                save_dir=str(run_dir),
                offline=mode == "offline",
                mode=mode,
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        )
    return loggers


def build_trainer(
    cfg: DictConfig,
    run_dir: Path,
    callbacks: list[pl.Callback] | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """A Lightning Trainer configured from the recipe's `trainer` and `logger` sections."""
    t = cfg.trainer
    kwargs: dict[str, Any] = dict(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        deterministic=t.deterministic or None,
        gradient_clip_val=t.gradient_clip_val or None,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # the datamodule's EpochSampler shards by rank itself
        default_root_dir=str(run_dir),
        logger=build_loggers(cfg, run_dir),
        callbacks=callbacks or [],
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


@dataclass
class RunSession:
    """What a training command works with once the recipe is set up."""

    cfg: DictConfig
    run_dir: Path
    datamodule: Any
    teacher: Any | None  # the recipe's frozen teacher (None for teacher.kind=none)

    def connect(self, module: Any) -> None:
        """Give the module its teacher outputs (a verified cache, or the teacher run online) and
        let the loaders serve cached features when the recipe asks for them."""
        attach_teacher(module, self.cfg, self.teacher, self.datamodule)
        serve_cached_features(self.cfg, module, self.datamodule)


def open_session(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    new_run_dir: bool = True,
    with_teacher: bool = True,
) -> RunSession:
    """Seed, build the datamodule and load the recipe's teacher (checked against the data's
    classes). With `new_run_dir` the run directory is created (or resumed) with its config.yaml;
    otherwise `run_dir` is an existing folder to write into."""
    from distill.data import build_datamodule

    if new_run_dir:
        run_dir = make_run_dir(cfg, run_dir, resume=resume)
    elif run_dir is None:
        raise BadValueError("open_session(new_run_dir=False) needs the run_dir to write into")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    datamodule = build_datamodule(cfg.data)
    teacher = load_teacher_for(cfg) if with_teacher else None
    if teacher is not None:
        check_class_names(teacher.class_names, datamodule.class_names, cfg.teacher.path)
    return RunSession(cfg, run_dir, datamodule, teacher)


def serve_cached_features(cfg: DictConfig, module: Any, datamodule: Any) -> None:
    """With data.cache_features, build the feature cache and let the loaders serve it."""
    if not cfg.data.cache_features:
        return
    if isinstance(module.teacher_source, torch.nn.Module):
        raise BadValueError(
            "data.cache_features=true leaves no waveforms for the online teacher "
            "(teacher.cache=false): use the teacher cache or set data.cache_features=false"
        )
    attach_feature_cache(cfg, datamodule, module.frontend)


def monitor_of(cfg: DictConfig, task: str) -> str:
    """The validation metric that picks the best checkpoint."""
    if cfg.trainer.monitor != "auto":
        return cfg.trainer.monitor
    return "val/mAP" if task == "multi_label" else "val/acc"
