"""timm image backbones on one-channel spectrograms (B, F, T) -> (B, 1, F, T).

Built with `pretrained=False` unless `pretrained_path` names a local weights file (.pth, .bin
or .safetensors); timm then folds the RGB stem into one channel and drops a classifier whose
size does not match. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from distill.students.registry import register_student
from torch import nn

from distill.errors import BadValueError, MissingFileError


class TimmStudent(nn.Module):
    """A timm model with `in_chans=1`; tap `backbone.blocks` is the map before global pooling."""

    def __init__(
        self,
        model_name: str,
        num_classes: int,
        n_features: int = 40,
        pretrained_path: str | Path | None = None,
        **timm_kwargs: object,
    ) -> None:
        super().__init__()
        import timm

        if not timm.is_model(model_name):
            raise BadValueError(f"timm has no model named {model_name!r}")
        options: dict = {"num_classes": num_classes, "in_chans": 1, **timm_kwargs}
        if pretrained_path is not None:
            path = Path(pretrained_path).expanduser()
            if not path.is_file():
                raise MissingFileError(
                    f"pretrained_path {str(path)!r} for timm model {model_name!r} does not exist "
                    "or is not a file"
                )
            options["pretrained_cfg_overlay"] = {"file": str(path)}
        self.n_features = n_features
        self.backbone = timm.create_model(
            model_name, pretrained=pretrained_path is not None, **options
        )
        self.num_features = self.backbone.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> map (B, C, F', T') before global pooling."""
        if x.dim() != 3:
            raise BadValueError(
                f"TimmStudent expects (B, F, T) features, got shape {tuple(x.shape)}"
            )
        return self.backbone.forward_features(x.unsqueeze(1))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Map -> logits through the timm head (pool, head conv, classifier)."""
        return self.backbone.forward_head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_TAP = {"default_tap": "backbone.blocks", "tap_layout": "BCFT", "paper_input": None}


@register_student("mobilenetv3_small", **_TAP)
def mobilenetv3_small(num_classes: int, n_features: int = 40, **kwargs: object) -> TimmStudent:
    """timm `mobilenetv3_small_100` with one input channel."""
    return TimmStudent("mobilenetv3_small_100", num_classes, n_features, **kwargs)


@register_student("mobilenetv3_large", **_TAP)
def mobilenetv3_large(num_classes: int, n_features: int = 40, **kwargs: object) -> TimmStudent:
    """timm `mobilenetv3_large_100` with one input channel."""
    return TimmStudent("mobilenetv3_large_100", num_classes, n_features, **kwargs)
