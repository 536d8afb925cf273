"""TC-ResNet (Choi et al., Interspeech 2019): temporal convolutions with features as channels.

Follows hyperconnect/TC-ResNet `audio_nets/tc_resnet.py`: conv0 3x1, residual blocks of two 9x1
convs, stride-2 1x1 conv+BN+ReLU shortcut when the width changes, global average pooling,
dropout (keep 0.5) and a bias-free FC. The unused 2-unit `fc2` of the original is left out.
The temporal convs are `nn.Conv2d` with (1, k) kernels on a (B, F, 1, T) tensor so that the
int8 toolchain (Conv2d/Linear only) quantizes them. BatchNorm uses epsilon 1e-3 as the original
but PyTorch's momentum 0.1: the original's decay 0.997 (momentum 0.003) suits its 30k steps, and
over the few hundred steps of a short run leaves the running statistics near their initial
values, so evaluation fails (`bn_momentum=0.003` restores it).
`causal=True` pads every temporal conv on the left only (`CausalConv2d`), so the model streams
statefully and exactly (distill.deploy.stateful); the default is the original SAME padding.
"""

from __future__ import annotations

import torch
from distill.students.causal import CausalConv2d
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError

TC_RESNET8_CHANNELS = (16, 24, 32, 48)
TC_RESNET14_CHANNELS = (16, 24, 24, 32, 32, 48, 48)


class _ConvBN(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, k: int, stride: int, bn: dict, causal: bool = False
    ) -> None:
        if causal:
            conv: nn.Conv2d = CausalConv2d(c_in, c_out, (1, k), (1, stride), bias=False)
        else:
            conv = nn.Conv2d(c_in, c_out, (1, k), (1, stride), (0, k // 2), bias=False)
        super().__init__(conv, nn.BatchNorm2d(c_out, **bn))


class TCResBlock(nn.Module):
    """conv 9x1 (stride s) -> BN -> ReLU -> conv 9x1 -> BN, + shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bn: dict, causal: bool = False) -> None:
        super().__init__()
        stride = 1 if c_in == c_out else 2
        self.conv1 = _ConvBN(c_in, c_out, kernel, stride, bn, causal)
        self.act1 = nn.ReLU()
        self.conv2 = _ConvBN(c_out, c_out, kernel, 1, bn, causal)
        if c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(_ConvBN(c_in, c_out, 1, 2, bn), nn.ReLU())
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))) + self.shortcut(x))


class TCResNet(nn.Module):
    """Input (B, F, T) features -> logits (B, num_classes); tap `blocks` is (B, C, 1, T')."""

    def __init__(
        self,
        num_classes: int,
        n_features: int = 40,
        channels: tuple[int, ...] = TC_RESNET8_CHANNELS,
        width_multiplier: float = 1.0,
        kernel_size: int = 9,
        dropout: float = 0.5,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-3,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise BadValueError(f"TC-ResNet needs at least 2 channel entries, got {channels}")
        widths = [int(c * width_multiplier) for c in channels]
        bn = {"momentum": bn_momentum, "eps": bn_eps}
        self.num_features = widths[-1]
        self.conv0 = nn.Sequential(_ConvBN(n_features, widths[0], 3, 1, bn, causal), nn.ReLU())
        self.blocks = nn.Sequential(
            *[TCResBlock(a, b, kernel_size, bn, causal) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> feature map (B, C, 1, T') before global pooling."""
        if x.dim() != 3:
            raise BadValueError(f"TCResNet expects (B, F, T) features, got shape {tuple(x.shape)}")
        return self.blocks(self.conv0(x.unsqueeze(2)))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Feature map -> logits: global average pool, dropout, bias-free FC."""
        return self.fc(self.dropout(feats.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TAP = {"default_tap": "blocks", "tap_layout": "BCFT", "paper_input": (40, 98)}


@register_student("tc_resnet8", **_TAP)
def tc_resnet8(num_classes: int, n_features: int = 40, **kwargs: object) -> TCResNet:
    """TC-ResNet8: channels 16, 24, 32, 48 (65.2K params with 40 MFCC, 12 classes)."""
    return TCResNet(num_classes, n_features, TC_RESNET8_CHANNELS, **kwargs)


@register_student("tc_resnet8_w15", aliases=("tc_resnet8_1.5",), **_TAP)
def tc_resnet8_w15(num_classes: int, n_features: int = 40, **kwargs: object) -> TCResNet:
    """TC-ResNet8-1.5: TC-ResNet8 with 1.5x widths (144.3K params)."""
    return TCResNet(num_classes, n_features, TC_RESNET8_CHANNELS, width_multiplier=1.5, **kwargs)


@register_student("tc_resnet14", **_TAP)
def tc_resnet14(num_classes: int, n_features: int = 40, **kwargs: object) -> TCResNet:
    """TC-ResNet14: channels 16, 24, 24, 32, 32, 48, 48 (135.9K params)."""
    return TCResNet(num_classes, n_features, TC_RESNET14_CHANNELS, **kwargs)


@register_student("tc_resnet14_w15", aliases=("tc_resnet14_1.5",), **_TAP)
def tc_resnet14_w15(num_classes: int, n_features: int = 40, **kwargs: object) -> TCResNet:
    """TC-ResNet14-1.5: TC-ResNet14 with 1.5x widths (303.0K params)."""
    return TCResNet(num_classes, n_features, TC_RESNET14_CHANNELS, width_multiplier=1.5, **kwargs)
