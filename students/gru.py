"""GRU (kws_streaming `gru`, paper config, Rybakov et al. 2020).

One GRU layer of 400 units over the (B, T, F) features, the last step -> dropout 0.1 ->
Dense 128 (linear) -> Dense 256 (ReLU) -> FC. PyTorch's GRU equals Keras' `reset_after=True`
GRU (two bias vectors), so the parameter count matches the paper (593.8K on 20 MFCC).
"""

from __future__ import annotations

import torch
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError


class GRUNet(nn.Module):
    """Input (B, F, T) -> logits; tap `rnn` gives (B, T, units) (layout BTC)."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 20,
        units: int = 400,
        dense: tuple[int, int] = (128, 256),
        dropout: float = 0.1,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if not causal:  # accepted so that one grid can set causal=true for every student
            raise BadValueError(
                "GRUNet is causal by construction (a unidirectional recurrent layer): "
                "causal=false is not available"
            )
        self.num_features = units
        self.rnn = nn.GRU(n_features, units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Sequential(
            nn.Linear(units, dense[0]), nn.Linear(dense[0], dense[1]), nn.ReLU()
        )
        self.fc = nn.Linear(dense[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> GRU outputs (B, T, units)."""
        if x.dim() != 3:
            raise BadValueError(f"GRUNet expects (B, F, T) features, got shape {tuple(x.shape)}")
        return self.rnn(x.transpose(1, 2))[0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Last time step -> dropout -> dense layers -> FC."""
        return self.fc(self.dense(self.dropout(feats[:, -1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_student("gru", default_tap="rnn", tap_layout="BTC", paper_input=(20, 49))
def gru(num_classes: int, n_features: int = 20, **kwargs: object) -> GRUNet:
    """GRU-400 with dense 128/256 (593.8K params on 20 MFCC, 12 classes)."""
    return GRUNet(num_classes, n_features, **kwargs)
