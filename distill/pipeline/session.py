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
from distill.config.loader import check_recipe
from distill.core.teacher_source import check_class_names, load_teacher_for
from distill.errors import BadValueError, UsageError
from distill.extras import require
from distill.files import FolderLock, lock_folder, write_text
from distill.pipeline.resume import AtomicCheckpointIO, ResumableCSVLogger

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
    `resume`, so two runs never mix their checkpoints and logs. The check and config.yaml are
    done under the directory's lock (released on return; `claim_run_dir` keeps it).
    """
    return claim_run_dir(cfg, run_dir, resume)[0]


def claim_run_dir(
    cfg: DictConfig, run_dir: str | Path | None = None, resume: bool = False
) -> tuple[Path, FolderLock | None]:
    """`make_run_dir` that also returns the run directory's lock, held while the lock object
    lives: another process claiming the directory meanwhile is refused naming this PID. A DDP
    child joins the run its rank 0 created and holds no lock (None)."""
    child = os.environ.get("LOCAL_RANK", "0") != "0"
    if run_dir is None and child:
        run_dir = os.environ.get(RUN_DIR_ENV)  # a DDP child joins the run its rank 0 created
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = None if child else lock_run_dir(run_dir)
    held = [p for p in ("checkpoints", "results.json") if (run_dir / p).exists()]
    if held and not resume and not child:
        lock = None  # released now, unless another session of this process holds it
        raise FileExistsError(
            f"run directory {run_dir} already holds a run ({', '.join(held)}): continue it "
            "with --resume, or choose another --run-dir"
        )
    os.environ[RUN_DIR_ENV] = str(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    return run_dir, lock


def new_run_dir(cfg: DictConfig) -> Path:
    """A new, empty `<run_dir>/<name>/<timestamp>[-N]` (two processes never get the same)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.run_dir) / cfg.name
    base.mkdir(parents=True, exist_ok=True)
    for suffix in range(10_000):
        run_dir = base / (f"{stamp}-{suffix}" if suffix else stamp)
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"no free run directory name under {base} for {stamp}")


def lock_run_dir(run_dir: Path) -> FolderLock | None:
    """The run directory's lock (see `distill.files.FolderLock`); None in a DDP child."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return None
    return lock_folder(run_dir, "run directory")


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


def require_logger_extras(cfg: DictConfig) -> None:
    """Import the optional packages of the recipe's TensorBoard and wandb loggers, or raise a
    MissingExtraError naming the extra that installs them."""
    if cfg.logger.tensorboard:
        require("tensorboard", "tensorboard", "the TensorBoard logger (logger.tensorboard=true)")
    if cfg.logger.wandb:
        require("wandb", "wandb", "the wandb logger (logger.wandb=true; false turns it off)")


def build_loggers(
    cfg: DictConfig, run_dir: Path, resume_step: int | None = None
) -> list[pl.loggers.Logger]:
    """Loggers named by the recipe: CSV always, TensorBoard and wandb on request.

    `resume_step`: the global step of the checkpoint a resumed run continues from; the logs
    keep what was logged before it and append (csv/metrics.csv keeps its rows of earlier
    steps, TensorBoard hides the events of the interrupted run from that step on). TensorBoard
    and wandb are optional extras: a missing one is a MissingExtraError naming its extra.
    """
    log_cfg = cfg.logger
    loggers: list[pl.loggers.Logger] = [
        ResumableCSVLogger(str(run_dir), name="", version="csv", keep_below_step=resume_step)
    ]
    require_logger_extras(cfg)
    if log_cfg.tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        purge = {} if resume_step is None else {"purge_step": resume_step}
        loggers.append(
            TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard", **purge)
        )
    if log_cfg.wandb:
        from pytorch_lightning.loggers import WandbLogger

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
    resume_step: int | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """A Lightning Trainer configured from the recipe's `trainer` and `logger` sections;
    checkpoints are written atomically. `overrides` (the caller's), then `trainer.kwargs` (the
    recipe's other Trainer arguments, checked by `check_recipe`) are applied last.
    `resume_step`: see `build_loggers`."""
    t = cfg.trainer
    kwargs: dict[str, Any] = dict(
        max_epochs=t.max_epochs,
        # .get: the keys a recipe read back from an older checkpoint may lack
        max_steps=t.get("max_steps", -1),
        accumulate_grad_batches=t.get("accumulate_grad_batches", 1),
        val_check_interval=val_check_interval(t.get("val_check_interval", 1.0)),
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
        logger=build_loggers(cfg, run_dir, resume_step),
        callbacks=callbacks or [],
        plugins=[AtomicCheckpointIO()],
    )
    kwargs.update(overrides)
    passthrough = t.get("kwargs") or {}
    kwargs.update(
        OmegaConf.to_container(passthrough)
        if OmegaConf.is_config(passthrough)
        else dict(passthrough)
    )
    return pl.Trainer(**kwargs)


def val_check_interval(value: int | float) -> int | float:
    """Lightning's reading of the recipe's value: a fraction of the epoch up to 1.0, a number of
    batches otherwise (a whole float above 1, e.g. 2.0 from a typed override, is 2 batches)."""
    if isinstance(value, float) and value > 1 and value.is_integer():
        return int(value)
    return value


@dataclass
class RunSession:
    """What a training command works with once the recipe is set up."""

    cfg: DictConfig
    run_dir: Path
    datamodule: Any
    teacher: Any | None  # the recipe's frozen teacher (None for teacher.kind=none)
    lock: FolderLock | None = None  # the run directory's lock, held while the session lives

    def close(self) -> None:
        """Release the run directory's lock (also done, as a last resort, when the session is
        garbage collected and at exit)."""
        if self.lock is not None:
            self.lock.release()
        self.lock = None

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
    otherwise `run_dir` is an existing folder to write into. Either way the session holds the
    folder's lock while it lives (see `claim_run_dir`)."""
    from distill.data import build_datamodule

    check_recipe(cfg)  # also configs built in Python, before any work
    require_logger_extras(cfg)
    if new_run_dir:
        run_dir, lock = claim_run_dir(cfg, run_dir, resume=resume)
    elif run_dir is None:
        raise BadValueError("open_session(new_run_dir=False) needs the run_dir to write into")
    else:
        run_dir = Path(run_dir)
        lock = lock_run_dir(run_dir)
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    datamodule = build_datamodule(cfg.data)
    teacher = load_teacher_for(cfg) if with_teacher else None
    if teacher is not None:
        check_class_names(teacher.class_names, datamodule.class_names, cfg.teacher.path)
    return RunSession(cfg, run_dir, datamodule, teacher, lock)


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
