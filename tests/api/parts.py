"""A user's own parts for the API tests: a student, a LightningModule, a tiny teacher, data."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill import kd_loss, students, teachers
from distill.data.frontend import Frontend

CLASSES = ["yes", "no", "up"]


class TinyStudent(nn.Module):
    """(B, F, T) -> logits; `encoder` outputs (B, width, T / 2) time features."""

    def __init__(self, num_classes: int, n_features: int, width: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(n_features, width, 3, stride=2, padding=1), nn.BatchNorm1d(width), nn.ReLU()
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x).mean(dim=2))


class Spotter(pl.LightningModule):
    """A user's module: frontend + student; KD added by `kd_loss` when `distil` is on."""

    def __init__(self, distil: bool = True, head_in_optimizer: bool = True) -> None:
        super().__init__()
        self.frontend = Frontend()
        self.net = students.create(TinyStudent, num_classes=3, n_features=40, width=8)
        self.example_input_array = torch.zeros(1, 16000)
        self.distil = distil
        self.head_in_optimizer = head_in_optimizer

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.net(self.frontend(waveform))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        waveform, label = batch
        logits = self(waveform)
        loss = F.cross_entropy(logits, label)
        return loss + kd_loss(self, waveform, logits) if self.distil else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.parameters() if self.head_in_optimizer else self.net.parameters()
        return torch.optim.SGD(params, lr=0.1)


def tiny_teacher() -> Any:
    torch.manual_seed(0)
    return teachers.create("inhouse", preset="tiny", class_names=CLASSES)


def loader(clips: int = 8) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(clips, 16000, generator=generator)
    labels = torch.randint(0, 3, (clips,), generator=generator)
    return DataLoader(TensorDataset(waveform, labels), batch_size=4)


def trainer(tmp_path: Any, steps: int, **kwargs: Any) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
        **kwargs,
    }
    return pl.Trainer(max_steps=steps, **options)
