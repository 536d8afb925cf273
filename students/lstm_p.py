"""LSTM-P (kws_streaming `lstm` with the paper's `lstm_peep` config, Rybakov et al. 2020).

One LSTM layer of 500 units with a 200-d projection over the (B, T, F) features, the last
step -> dropout 0.3 -> FC. Deviations from the TF model, for speed (cuDNN) and portability:
`nn.LSTM(proj_size=...)` has no peephole connections (-1,500 params) and two bias vectors
(+2,000 params): 546.4K here vs 545.9K in the paper (+0.1%).
ONNX has no projected LSTM, so during `torch.onnx.export` the same weights run through a
scripted time loop (exported as an ONNX Loop, dynamic length); results are identical.
`torch.jit.script` is deprecated, but the torch.export-based ONNX exporter unrolls RNNs to a
fixed length, so the legacy (TorchScript) exporter and this loop are what keep time dynamic.
"""

from __future__ import annotations

import warnings

import torch
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError

# CPU note from torch on every first call; the fallback kernel it announces is correct.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


def _lstm_proj_loop(
    gx: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, w_hr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected LSTM over input gates gx (T, B, 4H): outputs (T, B, P), last cell (B, H)."""
    batch = gx.size(1)
    hidden = w_hr.size(1)
    h = torch.zeros(batch, w_hr.size(0), dtype=gx.dtype, device=gx.device)
    c = torch.zeros(batch, hidden, dtype=gx.dtype, device=gx.device)
    outputs: list[torch.Tensor] = []
    for t in range(gx.size(0)):
        gates = gx[t] + torch.mm(h, w_hh.t()) + b_hh
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.mm(torch.sigmoid(o) * torch.tanh(c), w_hr.t())
        outputs.append(h)
    return torch.stack(outputs, 0), c


_scripted_loop = None


def _export_loop():
    global _scripted_loop
    if _scripted_loop is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
            _scripted_loop = torch.jit.script(_lstm_proj_loop)
    return _scripted_loop


class ProjectedLSTM(nn.LSTM):
    """Single-layer, unidirectional, batch-first `nn.LSTM` with projection, ONNX-exportable."""

    def __init__(self, input_size: int, hidden_size: int, proj_size: int) -> None:
        super().__init__(input_size, hidden_size, proj_size=proj_size, batch_first=True)

    def forward(self, x: torch.Tensor, hx: object = None):  # type: ignore[override]
        if not torch.onnx.is_in_onnx_export():
            return super().forward(x, hx)
        if hx is not None:
            raise BadValueError("ProjectedLSTM export path supports no initial state")
        gx = torch.matmul(x.transpose(0, 1), self.weight_ih_l0.t()) + self.bias_ih_l0
        out, c = _export_loop()(gx, self.weight_hh_l0, self.bias_hh_l0, self.weight_hr_l0)
        return out.transpose(0, 1), (out[-1:], c.unsqueeze(0))


class LSTMP(nn.Module):
    """Input (B, F, T) -> logits; tap `rnn` gives (B, T, proj_size) (layout BTC)."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 20,
        hidden_size: int = 500,
        proj_size: int = 200,
        dropout: float = 0.3,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if not causal:  # accepted so that one grid can set causal=true for every student
            raise BadValueError(
                "LSTMP is causal by construction (a unidirectional recurrent layer): "
                "causal=false is not available"
            )
        self.num_features = proj_size
        self.rnn = ProjectedLSTM(n_features, hidden_size, proj_size)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(proj_size, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> LSTM outputs (B, T, P)."""
        if x.dim() != 3:
            raise BadValueError(f"LSTMP expects (B, F, T) features, got shape {tuple(x.shape)}")
        return self.rnn(x.transpose(1, 2))[0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Last time step -> dropout -> FC."""
        return self.fc(self.dropout(feats[:, -1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_student(
    "lstm_p", aliases=("lstm_peep",), default_tap="rnn", tap_layout="BTC", paper_input=(20, 49)
)
def lstm_p(num_classes: int, n_features: int = 20, **kwargs: object) -> LSTMP:
    """LSTM-P: 500 units, projection 200 (546.4K params on 20 MFCC, 12 classes)."""
    return LSTMP(num_classes, n_features, **kwargs)
