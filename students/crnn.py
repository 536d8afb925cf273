"""CRNN (kws_streaming `crnn`, paper config, Rybakov et al. 2020).

Two valid-padded convs, (3, 3) x 16 and (5, 3) x 16 (time x frequency, ReLU), the map flattened
per time step to C*F', one GRU layer of 256 units, its last step -> dropout 0.1 -> Dense 128
(linear) -> Dense 256 (ReLU) -> FC. Each valid conv shortens time by k_t - 1 frames, so the
input needs at least 7 frames.
"""

from __future__ import annotations

import torch
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError


class CRNN(nn.Module):
    """Input (B, F, T) -> logits; tap `rnn` gives (B, T - 6, units) (layout BTC)."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 20,
        filters: tuple[int, ...] = (16, 16),
        kernels: tuple[tuple[int, int], ...] = ((3, 3), (5, 3)),
        units: int = 256,
        dense: tuple[int, int] = (128, 256),
        dropout: float = 0.1,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if not causal:  # accepted so that one grid can set causal=true for every student
            raise BadValueError(
                "CRNN is causal by construction (valid time convolutions, a unidirectional GRU): "
                "causal=false is not available"
            )
        if len(filters) != len(kernels):
            raise BadValueError(f"CRNN: {len(filters)} filters but {len(kernels)} kernels")
        convs: list[nn.Module] = []
        c_in, freq = 1, n_features
        for c_out, (kt, kf) in zip(filters, kernels):
            convs += [nn.Conv2d(c_in, c_out, (kf, kt)), nn.ReLU()]
            c_in, freq = c_out, freq - kf + 1
        if freq < 1:
            raise BadValueError(f"CRNN: n_features={n_features} is too small for kernels {kernels}")
        self.convs = nn.Sequential(*convs)
        self.num_features = units
        self.rnn = nn.GRU(c_in * freq, units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Sequential(
            nn.Linear(units, dense[0]), nn.Linear(dense[0], dense[1]), nn.ReLU()
        )
        self.fc = nn.Linear(dense[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> GRU outputs (B, T', units)."""
        if x.dim() != 3:
            raise BadValueError(f"CRNN expects (B, F, T) features, got shape {tuple(x.shape)}")
        maps = self.convs(x.unsqueeze(1))  # (B, C, F', T')
        seq = maps.permute(0, 3, 1, 2).flatten(2)  # (B, T', C * F')
        return self.rnn(seq)[0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Last time step -> dropout -> dense layers -> FC."""
        return self.fc(self.dense(self.dropout(feats[:, -1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_student("crnn", default_tap="rnn", tap_layout="BTC", paper_input=(20, 49))
def crnn(num_classes: int, n_features: int = 20, **kwargs: object) -> CRNN:
    """CRNN: 2 convs x 16, GRU 256, dense 128/256 (467.8K params on 20 MFCC, 12 classes)."""
    return CRNN(num_classes, n_features, **kwargs)
