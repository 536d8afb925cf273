"""Live detection from a microphone (optional: needs the `mic` extra, sounddevice + PortAudio)."""

from __future__ import annotations

import queue
import time

import numpy as np
import torch

from distill.deploy.audio_source import AudioHeader, StreamResampler
from distill.deploy.decisions import Decider, DecisionConfig
from distill.deploy.detect import Envelope, FileResult
from distill.deploy.stream import DetectorModel, Posteriors, StreamConfig, Streamer
from distill.errors import UsageError
from distill.extras import require


def _sounddevice():
    try:
        return require("sounddevice", "mic", "distill detect --mic")
    except OSError as err:  # sounddevice is there but the PortAudio library is not
        raise UsageError(
            f"distill detect --mic needs the PortAudio library, e.g. apt-get install "
            f"libportaudio2 ({err})"
        ) from err


def listen(
    model: DetectorModel,
    stream: StreamConfig | None = None,
    decisions: DecisionConfig | None = None,
    seconds: float | None = None,
    device: str | int | None = None,
) -> FileResult:
    """Detect from the default (or `device`) input until Ctrl-C or `seconds`; print each
    detection as it starts; return everything as one result named "microphone"."""
    sd = _sounddevice()
    device = int(device) if isinstance(device, str) and device.isdigit() else device
    native = int(sd.query_devices(device, "input")["default_samplerate"])
    rate = int(model.sample_rate)
    resampler, streamer = StreamResampler(native, rate), Streamer(model, stream)
    decider, envelope = Decider(model.class_names, decisions), Envelope(rate // 100)
    blocks: queue.Queue = queue.Queue()
    times, scores, heard = [], [], 0

    def callback(indata: np.ndarray, frames: int, when: object, status: object) -> None:
        blocks.put(indata.mean(axis=1).astype(np.float32).copy())

    stop = None if seconds is None else time.monotonic() + seconds
    print(f"distill detect: listening at {native} Hz (Ctrl-C stops)", flush=True)
    with sd.InputStream(samplerate=native, channels=1, device=device, callback=callback):
        try:
            while stop is None or time.monotonic() < stop:
                try:
                    chunk = resampler.push(torch.from_numpy(blocks.get(timeout=0.5)))
                except queue.Empty:
                    continue
                heard += chunk.numel()
                envelope.add(chunk)
                t, s = streamer.push(chunk)
                times.append(t)
                scores.append(s)
                for det in decider.push(t, s):
                    print(f"{det.start:10.2f} s  {det.label}  {det.score:.3f}", flush=True)
        except KeyboardInterrupt:
            pass
    posteriors = Posteriors(
        np.concatenate([np.zeros(0), *times]),
        np.concatenate([np.zeros((0, len(model.class_names)), dtype=np.float32), *scores]),
        list(model.class_names),
        {**streamer.info, "seconds": heard / rate},
    )
    header = AudioHeader("microphone", heard, rate, 1)
    return FileResult("microphone", header, posteriors, decider.finish(), envelope.finish(rate))
