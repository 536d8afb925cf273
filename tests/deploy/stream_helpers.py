"""Helpers of the streaming tests: students as detectors, the non-streaming reference, toys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill import students
from distill.data.frontend import Frontend
from distill.deploy.detector_model import StudentDetector

SR = 16000


def detector(
    name: str, classes: int = 4, normalize: str = "none", window: float = 1.0, **kwargs: object
) -> StudentDetector:
    """A random-weight student `name` with the default log-mel frontend, as a detector."""
    torch.manual_seed(0)
    frontend = Frontend(normalize=normalize)
    model = students.create(name, classes, frontend.n_features, **kwargs).eval()
    names = [f"c{i}" for i in range(classes)]
    return StudentDetector(model, frontend, names, window, "softmax", student_name=name)


def reference_stateful(
    det: StudentDetector, wave: torch.Tensor, times: np.ndarray, window_steps: int, axis: int
) -> np.ndarray:
    """The plain student on the log-mel frames of the audio heard by each hop time, its head on
    the last `window_steps` steps (what the stateful mode must reproduce)."""
    fe, model = det.frontend, det.student
    feats = fe(wave[None])
    n_fft, hop = fe.mel.spectrogram.n_fft, fe.hop_length
    rows = []
    with torch.no_grad():
        for t in times:
            heard = int(round(t * SR))
            frames = (heard - (n_fft - n_fft // 2)) // hop + 1
            steps = model.forward_features(feats[..., :frames])
            size = steps.shape[axis]
            keep = min(size, window_steps)
            logits = model.forward_head(steps.narrow(axis, size - keep, keep))
            rows.append(logits.softmax(-1)[0].numpy())
    return np.stack(rows)


def train_briefly(model: nn.Module, n_features: int = 40, frames: int = 101) -> nn.Module:
    """A few SGD steps on random features (weights and BatchNorm statistics move), then eval."""
    torch.manual_seed(1)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    classes = model(torch.randn(2, n_features, frames)).shape[1]
    for _ in range(6):
        x = torch.randn(8, n_features, frames) * 2 - 5
        y = torch.randint(0, classes, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


class EnergyNet(nn.Module):
    """Toy detector (importable by dotted path): class 1's logit is
    gain * (log mean mel power of the loudest frame - level), class 0's is 0; `level` separates
    a beep (about 2.6) from quiet noise (about -5). The two-element `scale` makes the state dict
    non-empty."""

    def __init__(
        self, num_classes: int = 2, n_features: int = 40, gain: float = 2.0, level: float = -1.0
    ) -> None:
        super().__init__()
        if num_classes != 2:
            raise ValueError("EnergyNet has two classes")
        self.scale = nn.Parameter(torch.tensor([0.0, gain]))
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        power = torch.logsumexp(x, dim=1) - math.log(x.shape[1])  # (B, T): log mean mel power
        return self.scale[None, :] * (power.amax(dim=1) - self.level)[:, None]


def save_student_file(path: Path, model: nn.Module, info: dict) -> Path:
    """Write a student file as `distill fit` does (weights + config), returning its path."""
    from distill.pipeline import artifacts

    if hasattr(artifacts, "write_student"):
        artifacts.write_student(path, model.state_dict(), info)
        return path
    path = path.with_suffix(".pt")
    torch.save({**info, "state_dict": model.state_dict()}, path)
    return path


def frontend_info(**overrides: object) -> dict:
    """The frontend section a saved student carries (defaults, normalize none)."""
    from distill.data.frontend import frontend_kwargs

    return frontend_kwargs(**{"normalize": "none", **overrides})
