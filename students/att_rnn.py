"""Att-RNN and MHAtt-RNN (kws_streaming `att_rnn` / `att_mh_rnn`, paper configs).

Two same-padded (5, 1) time convs (10 then 1 filter, each ReLU then BatchNorm), the map
flattened per time step, two bidirectional GRU layers of 128 units, then attention: per head a
query Dense(256) of the middle frame, softmax over time of query . frames, the weighted sum of
frames; heads concatenated -> dropout -> Dense 64 (ReLU) -> Dense 32 (linear) -> FC.
The softmax weights (B, heads, T) pass through the `attention_weights` identity module, the
student's attention tap.
"""

from __future__ import annotations

import torch
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError


class AttRNN(nn.Module):
    """Input (B, F, T) -> logits; tap `rnn` gives (B, T, 2 units) (layout BTC)."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 20,
        heads: int = 1,
        filters: tuple[int, ...] = (10, 1),
        kernel_t: int = 5,
        units: int = 128,
        rnn_layers: int = 2,
        dense: tuple[int, int] = (64, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if heads < 1:
            raise BadValueError(f"AttRNN: heads must be >= 1, got {heads}")
        convs: list[nn.Module] = []
        c_in = 1
        for c_out in filters:
            convs += [
                nn.Conv2d(c_in, c_out, (1, kernel_t), padding=(0, kernel_t // 2)),
                nn.ReLU(),
                nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01),
            ]
            c_in = c_out
        self.convs = nn.Sequential(*convs)
        self.rnn = nn.GRU(
            c_in * n_features, units, num_layers=rnn_layers, batch_first=True, bidirectional=True
        )
        dim = 2 * units
        self.heads = heads
        self.num_features = dim
        self.query = nn.Linear(dim, heads * dim)
        self.attention_weights = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Sequential(
            nn.Linear(heads * dim, dense[0]), nn.ReLU(), nn.Linear(dense[0], dense[1])
        )
        self.fc = nn.Linear(dense[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> BiGRU outputs (B, T, 2 units)."""
        if x.dim() != 3:
            raise BadValueError(f"AttRNN expects (B, F, T) features, got shape {tuple(x.shape)}")
        maps = self.convs(x.unsqueeze(1))  # (B, C, F, T)
        return self.rnn(maps.permute(0, 3, 1, 2).flatten(2))[0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Middle-frame queries -> attention over time -> pooled heads -> dense layers -> FC."""
        b, _, d = feats.shape
        middle = feats[:, feats.shape[1] // 2]  # (B, D)
        queries = self.query(middle).reshape(b, self.heads, d)  # (B, H, D)
        scores = torch.bmm(queries, feats.transpose(1, 2))  # (B, H, T)
        weights = self.attention_weights(torch.softmax(scores, dim=-1))
        pooled = torch.bmm(weights, feats).reshape(b, self.heads * d)  # (B, H * D)
        return self.fc(self.dense(self.dropout(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TAP = {
    "default_tap": "rnn",
    "tap_layout": "BTC",
    "attention_tap": "attention_weights",
    "paper_input": (20, 49),
}


@register_student("att_rnn", **_TAP)
def att_rnn(num_classes: int, n_features: int = 20, **kwargs: object) -> AttRNN:
    """Att-RNN: one attention head (496.5K params on 20 MFCC, 12 classes)."""
    return AttRNN(num_classes, n_features, heads=1, **kwargs)


@register_student("mhatt_rnn", aliases=("att_mh_rnn",), **_TAP)
def mhatt_rnn(num_classes: int, n_features: int = 20, **kwargs: object) -> AttRNN:
    """MHAtt-RNN: four attention heads, dropout 0.2 (743.0K params)."""
    kwargs.setdefault("dropout", 0.2)
    return AttRNN(num_classes, n_features, heads=4, **kwargs)
