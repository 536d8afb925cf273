"""A tiny distilled run (teacher, cache, 1-epoch fit with logit and temporal KD) for tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from distill.caches.teacher_cache import build_cache
from distill.core.teacher_source import load_teacher_for
from distill.data import build_datamodule
from distill.pipeline.fit import fit
from distill.pipeline.teach import teach
from tests.helpers.recipes import tiny_recipe


@pytest.fixture(scope="session")
def tiny_run(tiny_kws_bank: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("quant_run")
    cfg = tiny_recipe(tiny_kws_bank, tmp, logit_kd=0.5, temporal_kd=0.25)
    cfg.data.clip_seconds = 1.0
    cfg.trainer.limit_train_batches = 2.0
    cfg.trainer.limit_val_batches = 2.0
    cfg.qat.epochs = 1
    teach(cfg)
    build_cache(cfg, load_teacher_for(cfg), build_datamodule(cfg.data))
    results = fit(cfg)
    return {"cfg": cfg, "run_dir": Path(results.run_dir), "fit": results}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test: small ops are fastest (and not starved by other
    processes) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
