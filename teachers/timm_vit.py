"""timm ViT / DeiT on log-mel spectrograms as a teacher (one input channel, CLS/dist tokens).

The model is `timm.create_model(model_name, in_chans=1, img_size=(n_mels, frames of
`seconds`), patch_size=(freq, time), dynamic_img_size=True, dynamic_img_pad=True)`: clips of
other lengths use timm's resampled positional embedding, and a last partial time patch is
zero-padded (zero is the clip mean after the per-clip standardisation done here). Fused
attention is switched off per block and the weights are read by forward hooks on
`blocks[i].attn.attn_drop`. Saved as our `config.json` (teacher_kind "timm") + `model.safetensors`.
The per-token class logits (`frame_logits`) are the model's head after pooling applied to each
time position's hidden state: with global_pool="avg" and no fc_norm (a linear head) they average
exactly to the clip logits; with CLS-token pooling the head reads tokens it was not trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.registry import register_teacher
from distill.teachers.saved import read_teacher, save_teacher
from distill.teachers.timemap import Framing, hidden_to_time, kept_columns, patch_time_map

from distill.data.frontend import Frontend, frontend_kwargs
from distill.errors import BadValueError, MissingFileError

KIND = "timm"


@dataclass
class TimmViTConfig:
    """timm model name and overrides (model_kwargs: embed_dim, depth, num_heads, ...)."""

    class_names: list[str]
    model_name: str = "vit_tiny_patch16_224"
    patch_size: list[int] = field(default_factory=lambda: [16, 4])  # (freq bins, frames)
    seconds: float = 1.0
    model_kwargs: dict = field(default_factory=dict)
    pretrained_file: str | None = None  # local timm/ImageNet checkpoint to start from
    frontend: dict = field(default_factory=lambda: frontend_kwargs(n_mels=64))
    head_fusion: str = "mean"
    layers: list[int] | None = None
    query: str | None = None
    residual: float = 0.5

    @classmethod
    def from_dict(cls, values: dict, where: str = "timm teacher config") -> TimmViTConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise BadValueError(f"{where}: unknown keys {unknown}; valid keys: {sorted(names)}")
        values = dict(values)
        if "class_names" not in values:
            raise BadValueError(f"{where}: 'class_names' is required")
        values["frontend"] = frontend_kwargs(**{"n_mels": 64, **values.get("frontend", {})})
        return cls(**values)


@register_teacher(KIND)
class TimmViTTeacher(Teacher):
    """A timm VisionTransformer (or DeiT distilled) classifying log-mel spectrogram images."""

    default_query = "cls"

    def __init__(self, config: TimmViTConfig) -> None:
        import timm

        super().__init__(config.head_fusion, config.layers, config.query, config.residual)
        self.config = config
        self.frontend = Frontend(**config.frontend)
        n_feat = self.frontend.n_features
        if len(config.patch_size) != 2 or n_feat % config.patch_size[0]:
            raise BadValueError(
                f"timm teacher: patch_size {config.patch_size} must be [freq, time] with freq "
                f"dividing the {n_feat} frontend features"
            )
        frames = self.frontend.num_frames(int(config.seconds * self.sample_rate))
        kwargs = {
            "in_chans": 1, "num_classes": len(config.class_names), "img_size": (n_feat, frames),
            "patch_size": tuple(config.patch_size), "dynamic_img_size": True,
            "dynamic_img_pad": True, **config.model_kwargs,
        }  # fmt: skip
        if config.pretrained_file is not None:
            if not Path(config.pretrained_file).is_file():
                raise MissingFileError(
                    f"timm teacher: pretrained_file {config.pretrained_file} not found"
                )
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": config.pretrained_file})
        self.model = timm.create_model(config.model_name, **kwargs)
        self.num_prefix = int(self.model.num_prefix_tokens)
        if self.query == "cls" and not getattr(self.model, "has_class_token", False):
            raise BadValueError(
                f"timm teacher: query 'cls' needs a class token ({config.model_name})"
            )
        self.framing = Framing(
            self.sample_rate, self.frontend.hop_length, config.frontend["win_length"], centered=True
        )
        self._captured: list[torch.Tensor] = []
        blocks = getattr(self.model, "blocks", None)
        if not blocks:
            raise BadValueError(f"timm teacher: {config.model_name} has no transformer blocks")
        for i, blk in enumerate(blocks):
            attn = getattr(blk, "attn", None)
            if attn is None or not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
                raise BadValueError(
                    f"timm teacher: {config.model_name} block {i} has no timm Attention with "
                    "attn_drop/fused_attn, so its attention weights cannot be captured"
                )
            attn.fused_attn = False
            attn.attn_drop.register_forward_hook(self._capture)

    @classmethod
    def build(cls, class_names: list[str], **options) -> TimmViTTeacher:
        """A new teacher from TimmViTConfig fields (model_name, patch_size, seconds, ...)."""
        return cls(TimmViTConfig.from_dict({"class_names": class_names, **options}))

    def _capture(self, module, inputs, output) -> None:
        self._captured.append(output)

    @property
    def sample_rate(self) -> int:
        return int(self.config.frontend["sample_rate"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def _image(self, waveform: torch.Tensor) -> torch.Tensor:
        self.check_waveform(waveform)
        feats = self.frontend(waveform)
        mean = feats.mean(dim=(1, 2), keepdim=True)
        std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        return ((feats - mean) / std).unsqueeze(1)  # (B, 1, F, T)

    def classify(self, waveform: torch.Tensor) -> torch.Tensor:
        self._captured = []
        logits = self.model(self._image(waveform))
        self._captured = []
        return logits

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        image = self._image(waveform)
        self._captured = []
        try:
            tokens = self.model.forward_features(image)
            logits = self.model.forward_head(tokens)
            attentions = list(self._captured)
        finally:
            self._captured = []
        if len(attentions) != len(self.model.blocks):
            raise RuntimeError(
                f"timm teacher: captured {len(attentions)} attention maps for "
                f"{len(self.model.blocks)} blocks (is fused attention back on?)"
            )
        frames = image.shape[-1]
        pf, pt = self.config.patch_size
        grid = (image.shape[-2] // pf, -(-frames // pt))
        row = self.rollout_row(attentions, cls_index=0)
        attention, spans = patch_time_map(
            row, self.framing, grid, pt, pt, self.num_prefix, frames, waveform.shape[1]
        )
        keep = kept_columns(grid[1], pt, frames)
        hidden = hidden_to_time(tokens, grid, self.num_prefix, keep)
        frame_logits = self.head_per_position(hidden)
        return TeacherOutput(logits, attention, spans.to(logits.device), hidden, frame_logits)

    def head_per_position(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """Class logits (B, T_t, K) of each time position's hidden state (B, T_t, D): the parts of
        timm's `forward_head` after pooling (fc_norm, head_drop, head; for DeiT distilled the mean
        of head and head_dist), or None for a model whose `forward_head` is not one of those."""
        from timm.models.deit import VisionTransformerDistilled
        from timm.models.vision_transformer import VisionTransformer

        m, head_fn = self.model, type(self.model).forward_head
        if head_fn is VisionTransformerDistilled.forward_head:
            x = m.head_drop(hidden)
            return (m.head(x) + m.head_dist(x)) / 2
        if head_fn is VisionTransformer.forward_head:
            return m.head(m.head_drop(m.fc_norm(hidden)))
        return None

    def save_pretrained(self, directory: str | Path) -> None:
        config = dataclasses.asdict(self.config)
        config.update(self.rollout_options(), pretrained_file=None)
        save_teacher(self, directory, KIND, config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> TimmViTTeacher:
        """Rebuild a teacher written by `save_pretrained` (no network, no timm hub weights)."""
        config, state, cfg_path = read_teacher(directory, KIND, "timm teacher")
        teacher = cls(TimmViTConfig.from_dict(config, where=str(cfg_path)))
        teacher.load_state_dict(state)
        return teacher
