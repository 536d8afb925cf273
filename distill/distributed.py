"""Rank, device and barrier helpers for torchrun / an initialised process group (used by cache
builds, before the trainer starts)."""

from __future__ import annotations

import os

import torch


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _gpu_per_process(accelerator: str) -> bool:
    """Whether each local process has a CUDA device of its own under `trainer.accelerator`."""
    if accelerator == "cpu" or not torch.cuda.is_available():
        return False
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return torch.cuda.device_count() >= local_world


def distributed_rank(accelerator: str = "auto") -> tuple[int, int]:
    """(rank, world size): from an initialised process group, or torchrun's environment (then
    the group is initialised here: nccl with one CUDA device per local process, which becomes
    the process's current device; gloo on CPU, with `accelerator=cpu`, or with fewer devices
    than processes); (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if _gpu_per_process(accelerator):
            torch.cuda.set_device(_local_rank())
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def compute_device(accelerator: str = "auto") -> torch.device:
    """Where this process runs a cache build: its local CUDA device unless `accelerator=cpu`
    or no CUDA device is there (then the CPU)."""
    if accelerator == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", _local_rank() % torch.cuda.device_count())


def barrier(world: int) -> None:
    """Wait for every rank (no-op for a single process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
