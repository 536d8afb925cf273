"""Which process group and device a torchrun process takes for the cache builds: nccl only with
a CUDA device per local process (made current), gloo otherwise or with trainer.accelerator=cpu."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from distill import distributed


@pytest.fixture
def torchrun(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Two local processes, this one rank 1; the group init and set_device are recorded."""
    seen: dict = {}
    for key, value in {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: seen.update(backend=backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: seen.update(device=index))
    return seen


def gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    ("count", "accelerator", "backend", "device"),
    [(0, "auto", "gloo", "cpu"), (2, "cpu", "gloo", "cpu"), (1, "auto", "gloo", "cuda:0"),
     (2, "auto", "nccl", "cuda:1"), (2, "gpu", "nccl", "cuda:1")],
)  # fmt: skip
def test_backend_and_device(torchrun, monkeypatch, count, accelerator, backend, device) -> None:
    gpus(monkeypatch, count)
    assert distributed.distributed_rank(accelerator) == (1, 2)
    assert torchrun["backend"] == backend
    assert torchrun.get("device") == (1 if backend == "nccl" else None)
    assert str(distributed.compute_device(accelerator)) == device


def test_a_single_process_initialises_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: pytest.fail(backend))
    assert distributed.distributed_rank() == (0, 1)
