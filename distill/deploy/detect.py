"""Detection over audio files: blocks from disk -> streaming runtime -> decisions.

`detect_file` streams one file (never loaded whole) and returns its posteriors, detections and a
min/max envelope of the waveform for plots; `detect_files` runs a list, refusing a bad file
with its name or, with `skip_bad`, listing it as skipped. `detection_record` and
`write_detections` give what `distill detect` writes (detections.csv, detections.json, plots).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.data.audio import AudioFileError
from distill.deploy.audio_source import AudioHeader, audio_header, read_blocks
from distill.deploy.decisions import Decider, DecisionConfig, Detection
from distill.deploy.stream import DetectorModel, Posteriors, StreamConfig, Streamer
from distill.files import write_json, write_text

ENVELOPE_POINTS = 4000  # waveform plot resolution (min/max pairs per file)


class Envelope:
    """Min and max of the samples in consecutive buckets (a waveform plot without the samples)."""

    def __init__(self, bucket: int) -> None:
        self.bucket = max(1, bucket)
        self._rest = torch.zeros(0)
        self.low: list[float] = []
        self.high: list[float] = []

    def add(self, samples: torch.Tensor) -> None:
        x = torch.cat([self._rest, samples])
        full = x.numel() // self.bucket * self.bucket
        if full:
            parts = x[:full].reshape(-1, self.bucket)
            self.low += parts.amin(dim=1).tolist()
            self.high += parts.amax(dim=1).tolist()
        self._rest = x[full:]

    def finish(self, sample_rate: int) -> dict[str, np.ndarray]:
        """Bucket start times (s), minima and maxima."""
        self.add(torch.zeros(0))
        if self._rest.numel():
            self.low.append(float(self._rest.min()))
            self.high.append(float(self._rest.max()))
            self._rest = torch.zeros(0)
        times = np.arange(len(self.low)) * self.bucket / sample_rate
        return {"times": times, "low": np.asarray(self.low), "high": np.asarray(self.high)}


@dataclass
class FileResult:
    """What detection found in one file."""

    path: str
    header: AudioHeader
    posteriors: Posteriors
    detections: list[Detection]
    envelope: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "seconds": round(self.posteriors.info.get("seconds", 0.0), 6),
            "native_sample_rate": self.header.sample_rate,
            "channels": self.header.channels,
            "hops": int(len(self.posteriors.times)),
            "detections": len(self.detections),
        }


def detect_file(
    model: DetectorModel,
    path: str | Path,
    stream: StreamConfig | None = None,
    decisions: DecisionConfig | None = None,
    block_seconds: float = 10.0,
    progress: Callable[[float], None] | None = None,
) -> FileResult:
    """Stream `path` from disk through `model`; `progress(seconds)` after every block."""
    header = audio_header(path)
    rate = int(model.sample_rate)
    streamer = Streamer(model, stream)
    decider = Decider(model.class_names, decisions)
    envelope = Envelope(int(header.seconds * rate) // ENVELOPE_POINTS)
    times, scores = [], []
    for block in read_blocks(path, rate, block_seconds):
        envelope.add(block)
        t, s = streamer.push(block)
        decider.push(t, s)
        times.append(t)
        scores.append(s)
        if progress is not None:
            progress(block.numel() / rate)
    classes = len(model.class_names)
    posteriors = Posteriors(
        np.concatenate([np.zeros(0), *times]),
        np.concatenate([np.zeros((0, classes), dtype=np.float32), *scores]),
        list(model.class_names),
        {**streamer.info, "seconds": streamer.samples / rate},
    )
    return FileResult(str(path), header, posteriors, decider.finish(), envelope.finish(rate))


def detect_files(
    model: DetectorModel,
    paths: list[Path],
    stream: StreamConfig | None = None,
    decisions: DecisionConfig | None = None,
    skip_bad: bool = False,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[FileResult], list[dict[str, str]]]:
    """Results of every readable file and the skipped ones ({file, reason}; only `skip_bad`)."""
    results, skipped = [], []
    for path in paths:
        try:
            results.append(detect_file(model, path, stream, decisions, progress=progress))
        except AudioFileError as err:
            if not skip_bad:
                raise
            skipped.append({"file": str(path), "reason": " ".join(str(err).split())})
    return results, skipped


def detection_record(
    model: DetectorModel, stream_info: dict[str, Any], decisions: DecisionConfig
) -> dict[str, Any]:
    """The JSON record of a detection run before any file: model, stream, decisions."""
    info = {k: v for k, v in stream_info.items() if k != "seconds"}
    return {
        "model": model.describe(),
        "stream": info,
        "decisions": decisions.to_dict(model.class_names),
        "audio_conversion": (
            f"channels averaged; resampled to {model.sample_rate} Hz with "
            "torchaudio.functional.resample (block by block, equal to the whole-file result)"
        ),
        "files": [],
        "skipped": [],
        "plots": [],
        "detections": [],
    }


def add_results(record: dict[str, Any], results: list[FileResult]) -> None:
    """Add the files' summaries and detections to `record`."""
    for result in results:
        record["files"].append(result.summary())
        record["detections"] += [{"file": result.path, **d.to_dict()} for d in result.detections]


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["file", "start", "end", "class", "score"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _plot_names(results: list[FileResult]) -> list[str]:
    stems = [Path(r.path).stem for r in results]
    return [
        f"{stem}.png" if stems.count(stem) == 1 else f"{i:03d}_{stem}.png"
        for i, stem in enumerate(stems)
    ]


def write_detections(
    out: str | Path,
    record: dict[str, Any],
    results: list[FileResult],
    plot: bool = False,
    truth: dict[str, list[tuple[str, float, float]]] | None = None,
) -> dict[str, Path]:
    """Write detections.csv, detections.json and (with `plot`) plots/<file>.png into `out`;
    `truth` (file path -> [(class, onset, offset)]) marks known keywords in the plots."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot:
        from distill.deploy.detect_plot import plot_detections

        thresholds = record["decisions"]["thresholds"]
        smooth = record["decisions"]["smooth_hops"]
        (out / "plots").mkdir(exist_ok=True)
        for result, name in zip(results, _plot_names(results)):
            marks = (truth or {}).get(result.path)
            plot_detections(result, thresholds, smooth, out / "plots" / name, marks)
            record["plots"].append(str(out / "plots" / name))
    paths = {"csv": out / "detections.csv", "json": out / "detections.json"}
    write_text(paths["csv"], _csv(record["detections"]))
    write_json(paths["json"], record)
    return paths
