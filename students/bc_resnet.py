"""BC-ResNet (Kim et al., Interspeech 2021): broadcasted residual learning.

Follows Qualcomm-AI-research/bcresnet `bcresnet.py`: base width c = int(8 tau), channels
[2c, c, 1.5c, 2c, 2.5c, 4c], a 5x5 stride-(2,1) head, four stages of 2, 2, 4, 4 BC-ResBlocks
(frequency stride 2 in the first block of stages 2 and 3, temporal dilation 1, 2, 4, 8) and a
depthwise 5x5 -> 1x1 -> BN -> ReLU -> pool -> 1x1 classifier. Input (B, F, T) log-mels become
(B, 1, F, T). The frequency sizes after the head and each stride must be divisible by the
5 SubSpectralNorm sub-bands, which holds for F = 40 (20, 10, 5).
`causal=True` pads the time axis of the head, the temporal depthwise convs and the classifier's
depthwise conv on the left only (`CausalConv2d`), so the model streams statefully and exactly
(distill.deploy.stateful); every other layer already works frame by frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from distill.students.causal import CausalConv2d
from distill.students.registry import register_student
from distill.students.subspectral_norm import SubSpectralNorm
from torch import nn

from distill.errors import BadValueError


class FrequencyMean(nn.Module):
    """(B, C, F, T) -> (B, C, 1, T): the mean over frequency (a module so exports can swap it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2, keepdim=True)


class BCResBlock(nn.Module):
    """y = ReLU(f1(avgpool_F(f2(x))) + f2(x) [+ x unless the width changes])."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        freq_stride: int,
        dilation: int,
        sub_bands: int,
        dropout: float,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.transition = c_in != c_out
        f2: list[nn.Module] = []
        if self.transition:
            f2 += [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        f2 += [
            nn.Conv2d(c_out, c_out, (3, 1), (freq_stride, 1), (1, 0), groups=c_out, bias=False),
            SubSpectralNorm(c_out, sub_bands),
        ]
        self.f2 = nn.Sequential(*f2)
        self.frequency_mean = FrequencyMean()
        if causal:
            temporal: nn.Conv2d = CausalConv2d(
                c_out, c_out, (1, 3), dilation=(1, dilation), groups=c_out, bias=False
            )
        else:
            temporal = nn.Conv2d(
                c_out,
                c_out,
                (1, 3),
                padding=(0, dilation),
                dilation=(1, dilation),
                groups=c_out,
                bias=False,
            )
        self.f1 = nn.Sequential(
            temporal,
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
            nn.Conv2d(c_out, c_out, 1, bias=False),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aux = self.f2(x)
        y = self.f1(self.frequency_mean(aux)) + aux
        if not self.transition:
            y = y + x
        return F.relu(y)


class BCResNet(nn.Module):
    """Input (B, F, T) -> logits (B, num_classes); tap `neck` is (B, 4c, F'', T)."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 40,
        tau: float = 1.0,
        sub_bands: int = 5,
        dropout: float = 0.1,
        blocks: tuple[int, ...] = (2, 2, 4, 4),
        stride_stages: tuple[int, ...] = (1, 2),
        causal: bool = False,
    ) -> None:
        super().__init__()
        base = int(8 * tau)
        if base < 1:
            raise BadValueError(f"BC-ResNet tau={tau} gives base width {base}; need tau >= 0.125")
        c = [base * 2, base, int(base * 1.5), base * 2, int(base * 2.5), base * 4]
        freq = (n_features + 1) // 2
        for idx in range(len(blocks)):
            if freq % sub_bands:
                raise BadValueError(
                    f"BC-ResNet: n_features={n_features} gives {freq} frequency bins in stage "
                    f"{idx}, not divisible by sub_bands={sub_bands}; use a multiple of 40"
                )
            if idx in stride_stages:
                freq = (freq + 1) // 2
        if freq % sub_bands or freq < 5:
            raise BadValueError(
                f"BC-ResNet: n_features={n_features} leaves {freq} frequency bins for the last "
                f"stage; need a multiple of {sub_bands} and at least 5 (use a multiple of 40)"
            )
        self.num_features = c[-1]
        if causal:
            head: nn.Conv2d = CausalConv2d(1, c[0], 5, (2, 1), freq_padding=2, bias=False)
            neck: nn.Conv2d = CausalConv2d(c[-2], c[-2], 5, groups=c[-2], bias=False)
        else:
            head = nn.Conv2d(1, c[0], 5, (2, 1), 2, bias=False)
            neck = nn.Conv2d(c[-2], c[-2], 5, padding=(0, 2), groups=c[-2], bias=False)
        self.head = nn.Sequential(head, nn.BatchNorm2d(c[0]), nn.ReLU())
        stages = []
        for idx, n in enumerate(blocks):
            layers = []
            for j in range(n):
                stride = 2 if (idx in stride_stages and j == 0) else 1
                c_in = c[idx] if j == 0 else c[idx + 1]
                layers.append(
                    BCResBlock(c_in, c[idx + 1], stride, 2**idx, sub_bands, dropout, causal)
                )
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.neck = nn.Sequential(
            neck,
            nn.Conv2d(c[-2], c[-1], 1, bias=False),
            nn.BatchNorm2d(c[-1]),
            nn.ReLU(),
        )
        self.fc = nn.Conv2d(c[-1], num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> map (B, 4c, F'', T) before global pooling."""
        if x.dim() != 3:
            raise BadValueError(f"BCResNet expects (B, F, T) features, got shape {tuple(x.shape)}")
        return self.neck(self.stages(self.head(x.unsqueeze(1))))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Map -> logits: global average pool and 1x1 conv with bias."""
        return self.fc(feats.mean(dim=(2, 3), keepdim=True)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TAP = {"default_tap": "neck", "tap_layout": "BCFT", "paper_input": (40, 101)}


def _factory(tau: float):
    def build(num_classes: int, n_features: int = 40, **kwargs: object) -> BCResNet:
        return BCResNet(num_classes, n_features, tau=tau, **kwargs)

    build.__doc__ = f"BC-ResNet-{tau:g} (base width {int(8 * tau)})."
    return build


for _tau, _name, _aliases in [
    (1.0, "bc_resnet1", ()),
    (1.5, "bc_resnet1_5", ("bc_resnet1.5",)),
    (2.0, "bc_resnet2", ()),
    (3.0, "bc_resnet3", ()),
    (6.0, "bc_resnet6", ()),
    (8.0, "bc_resnet8", ()),
]:
    register_student(_name, aliases=_aliases, **_TAP)(_factory(_tau))
