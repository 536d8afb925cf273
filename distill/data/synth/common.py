"""Shared plumbing of the generators: atomic output folders, seeded RNGs, parallel map."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import BadValueError, DistillError


class DatasetExistsError(DistillError, FileExistsError):
    """The output folder exists, is not empty, and `overwrite` was not asked for."""


class UnpronounceableError(BadValueError):
    """A TTS backend cannot say a text (phonemes outside its voice, no audio)."""


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one item, fixed by the dataset seed and the item's keys."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *keys]))


def prepare_partial(out: Path, overwrite: bool) -> Path:
    """Check `out` may be written and return a fresh `<out>.partial` folder to generate into."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DatasetExistsError(
            f"{out} already exists and is not empty; pass --overwrite to replace it"
        )
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def commit_partial(partial: Path, out: Path) -> None:
    """Move the finished `partial` folder to `out`, replacing what was there."""
    out = Path(out)
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)


def default_workers() -> int:
    """Worker processes used when none are asked for: one per CPU core."""
    return os.cpu_count() or 1


def parallel_map(
    fn: Callable[[Any], Any], tasks: list[Any], workers: int, desc: str
) -> Iterator[Any]:
    """Results of `fn` over `tasks` in order, on `workers` processes, with a tqdm progress bar."""
    from tqdm import tqdm

    if workers < 1:
        raise BadValueError(f"workers must be >= 1, got {workers}")
    bar = tqdm(total=len(tasks), desc=desc, unit="clip", dynamic_ncols=True)
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield fn(task)
                bar.update()
            return
        chunk = max(1, min(32, len(tasks) // (workers * 8)))
        # fork: workers need no re-import of __main__ and start in milliseconds; they use only
        # numpy, scipy and a freshly loaded eSpeak NG per utterance, never inherited threads.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for result in pool.imap(fn, tasks, chunksize=chunk):
                yield result
                bar.update()
    finally:
        bar.close()
