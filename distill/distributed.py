"""Rank and barrier helpers for torchrun / an initialised process group (used by cache builds)."""

from __future__ import annotations

import os

import torch


def distributed_rank() -> tuple[int, int]:
    """(rank, world size): from an initialised process group, or torchrun's environment (then
    the group is initialised here: gloo on CPU, nccl on CUDA); (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier(world: int) -> None:
    """Wait for every rank (no-op for a single process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
