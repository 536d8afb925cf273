"""DS-CNN S/M/L (Zhang et al., "Hello Edge", 2017).

Follows ARM-software/ML-KWS-for-MCU `models.py::create_ds_cnn_model` with the
`train_commands.txt` sizes: a regular conv (10x4 time x frequency) then depthwise-separable
layers (3x3 depthwise + 1x1 pointwise), each conv with bias and followed by BN + ReLU, global
average pooling and an FC. TF "SAME" padding is reproduced by padding k-1 zeros per axis,
the extra one at the end, which gives ceil(n / stride) outputs like TF.
Input (B, F, T) becomes (B, 1, F, T); the paper input is 10 MFCC x 49 frames (40/20 ms).
`causal=True` pads time on the left only (k_t - 1 zeros, `CausalConv2d`; frequency keeps SAME
padding), so the model streams statefully and exactly (distill.deploy.stateful).
"""

from __future__ import annotations

import torch
from distill.students.causal import CausalConv2d
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError

# (channels, kernel_t, kernel_f, stride_t, stride_f) per layer; the first is the regular conv.
DS_CNN_CONFIGS: dict[str, list[tuple[int, int, int, int, int]]] = {
    "s": [(64, 10, 4, 2, 2)] + [(64, 3, 3, 1, 1)] * 4,
    "m": [(172, 10, 4, 2, 1), (172, 3, 3, 2, 2)] + [(172, 3, 3, 1, 1)] * 3,
    "l": [(276, 10, 4, 2, 1), (276, 3, 3, 2, 2)] + [(276, 3, 3, 1, 1)] * 4,
}


def _same_pad(kernel_t: int, kernel_f: int, causal: bool = False) -> nn.ZeroPad2d:
    """TF-style SAME padding for a (F, T) map: (left, right, top, bottom); frequency only when
    `causal` (the conv then pads time on the left)."""
    left, right = (0, 0) if causal else ((kernel_t - 1) // 2, kernel_t // 2)
    return nn.ZeroPad2d((left, right, (kernel_f - 1) // 2, kernel_f // 2))


def _conv(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    groups: int,
    causal: bool,
) -> nn.Conv2d:
    if causal:
        return CausalConv2d(c_in, c_out, kernel, stride, groups=groups)
    return nn.Conv2d(c_in, c_out, kernel, stride, groups=groups)


class DSBlock(nn.Module):
    """Depthwise conv -> BN -> ReLU -> pointwise conv -> BN -> ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kt: int, kf: int, st: int, sf: int, causal: bool = False
    ) -> None:
        super().__init__()
        self.pad = _same_pad(kt, kf, causal)
        self.dw = _conv(c_in, c_in, (kf, kt), (sf, st), c_in, causal)
        self.dw_bn = nn.BatchNorm2d(c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1)
        self.pw_bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dw_bn(self.dw(self.pad(x))))
        return self.act(self.pw_bn(self.pw(x)))


class DSCNN(nn.Module):
    """Input (B, F, T) -> logits (B, num_classes); tap `blocks` is (B, C, F', T')."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 10,
        size: str = "s",
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if size not in DS_CNN_CONFIGS:
            raise BadValueError(f"DS-CNN size {size!r} unknown; expected one of s, m, l")
        layers = DS_CNN_CONFIGS[size]
        c0, kt, kf, st, sf = layers[0]
        self.stem = nn.Sequential(
            _same_pad(kt, kf, causal),
            _conv(1, c0, (kf, kt), (sf, st), 1, causal),
            nn.BatchNorm2d(c0),
            nn.ReLU(),
        )
        blocks, c_in = [], c0
        for c_out, kt, kf, st, sf in layers[1:]:
            blocks.append(DSBlock(c_in, c_out, kt, kf, st, sf, causal))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = c_in
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> map (B, C, F', T') before global pooling."""
        if x.dim() != 3:
            raise BadValueError(f"DSCNN expects (B, F, T) features, got shape {tuple(x.shape)}")
        return self.blocks(self.stem(x.unsqueeze(1)))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Map -> logits: global average pool, (optional) dropout, FC."""
        return self.fc(self.dropout(feats.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TAP = {"default_tap": "blocks", "tap_layout": "BCFT", "paper_input": (10, 49)}


@register_student("ds_cnn_s", **_TAP)
def ds_cnn_s(num_classes: int, n_features: int = 10, **kwargs: object) -> DSCNN:
    """DS-CNN-S: 64 channels, 4 DS layers (23.8K params on 10x49 MFCC, 12 classes)."""
    return DSCNN(num_classes, n_features, size="s", **kwargs)


@register_student("ds_cnn_m", **_TAP)
def ds_cnn_m(num_classes: int, n_features: int = 10, **kwargs: object) -> DSCNN:
    """DS-CNN-M: 172 channels, 4 DS layers (138K params)."""
    return DSCNN(num_classes, n_features, size="m", **kwargs)


@register_student("ds_cnn_l", **_TAP)
def ds_cnn_l(num_classes: int, n_features: int = 10, **kwargs: object) -> DSCNN:
    """DS-CNN-L: 276 channels, 5 DS layers (417K params)."""
    return DSCNN(num_classes, n_features, size="l", **kwargs)
