"""A tiny custom student, importable by dotted path `custom_student.TinyNet` in the tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """(B, F, T) -> logits; `encoder.1` outputs (B, width, T // 2) time features."""

    def __init__(self, num_classes: int, n_features: int, width: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(n_features, width, 3, stride=2, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x).mean(dim=2))


NOT_A_MODEL = 3
