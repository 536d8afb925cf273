"""The in-house teacher: a KWT/AST-like pre-norm transformer on log-mel patches of the waveform."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.registry import register_teacher
from distill.teachers.saved import read_teacher, save_teacher
from distill.teachers.timemap import Framing, hidden_to_time, kept_columns, patch_time_map
from torch import nn

from distill.data.frontend import Frontend, frontend_kwargs
from distill.errors import BadValueError

KIND = "inhouse"

PRESETS: dict[str, dict] = {
    "tiny": {"width": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0},
    "small": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 4.0},
    "base": {"width": 192, "depth": 6, "heads": 4, "mlp_ratio": 4.0},
}


@dataclass
class SpectrogramTransformerConfig:
    """Architecture, frontend and rollout options of the in-house teacher (defaults: `base`).

    patch_freq None means the full frequency height (KWT-style time tokens); patch_time frames
    per token (10 ms each with the default frontend). Positions beyond max_seconds are an error.
    """

    class_names: list[str]
    width: int = 192
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    patch_freq: int | None = None
    patch_time: int = 2
    cls_token: bool = True
    max_seconds: float = 10.0
    dropout: float = 0.0
    frontend: dict = field(default_factory=frontend_kwargs)
    head_fusion: str = "mean"
    layers: list[int] | None = None
    query: str | None = None
    residual: float = 0.5

    @classmethod
    def from_dict(
        cls, values: dict, where: str = "in-house teacher config"
    ) -> SpectrogramTransformerConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise BadValueError(f"{where}: unknown keys {unknown}; valid keys: {sorted(names)}")
        if "class_names" not in values:
            raise BadValueError(f"{where}: 'class_names' is required")
        values = dict(values)
        values["frontend"] = frontend_kwargs(**values.get("frontend", {}))
        return cls(**values)


class SelfAttention(nn.Module):
    """Multi-head self-attention that can return its softmax weights (B, H, N, N)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise BadValueError(f"teacher width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if need_weights:
            weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
            out = F.dropout(weights, p) @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN x), then x + mlp(LN x)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width)
        )

    def forward(
        self, x: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, w = self.attn(self.norm1(x), need_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), w


@register_teacher(KIND, recipe_frontend=True)
class SpectrogramTransformerTeacher(Teacher):
    """Waveform -> log-mel (built-in Frontend) -> per-clip standardised patches -> transformer.

    Tokens: an optional CLS token, then (freq_patches x time_patches) non-overlapping patches in
    frequency-major order, with a learned positional embedding per grid cell (time positions
    are sliced, so clips of any length up to max_seconds share the same embeddings).
    """

    default_query = "cls"

    def __init__(self, config: SpectrogramTransformerConfig) -> None:
        if config.query is None:
            config = dataclasses.replace(config, query="cls" if config.cls_token else "mean")
        if config.query == "cls" and not config.cls_token:
            raise BadValueError("in-house teacher: query 'cls' needs cls_token=True")
        super().__init__(config.head_fusion, config.layers, config.query, config.residual)
        if not config.class_names:
            raise BadValueError("in-house teacher: class_names must not be empty")
        self.config = config
        self.frontend = Frontend(**config.frontend)
        n_feat = self.frontend.n_features
        self.patch_freq = n_feat if config.patch_freq is None else config.patch_freq
        if self.patch_freq <= 0 or n_feat % self.patch_freq:
            raise BadValueError(
                f"in-house teacher: patch_freq {config.patch_freq} must divide the {n_feat} "
                "frontend features"
            )
        if config.patch_time <= 0:
            raise BadValueError(
                f"in-house teacher: patch_time must be >= 1, got {config.patch_time}"
            )
        self.freq_patches = n_feat // self.patch_freq
        max_frames = self.frontend.num_frames(int(config.max_seconds * self.sample_rate))
        self.max_time_patches = -(-max_frames // config.patch_time)
        width = config.width
        self.patch_embed = nn.Linear(self.patch_freq * config.patch_time, width)
        self.pos_embed = nn.Parameter(
            torch.randn(1, self.freq_patches, self.max_time_patches, width) * 0.02
        )
        self.num_prefix = 1 if config.cls_token else 0
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02) if config.cls_token else None
        self.blocks = nn.ModuleList(
            Block(width, config.heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, len(config.class_names))
        self.framing = Framing(
            self.sample_rate, self.frontend.hop_length, config.frontend["win_length"], centered=True
        )

    @classmethod
    def from_preset(cls, preset: str = "base", **overrides) -> SpectrogramTransformerTeacher:
        """A teacher from a named size (tiny | small | base) with config overrides."""
        if preset not in PRESETS:
            raise BadValueError(
                f"unknown in-house teacher preset {preset!r}; valid: {sorted(PRESETS)}"
            )
        if "num_classes" in overrides:
            k = overrides.pop("num_classes")
            overrides.setdefault("class_names", [str(i) for i in range(k)])
        return cls(SpectrogramTransformerConfig.from_dict({**PRESETS[preset], **overrides}))

    @classmethod
    def build(cls, class_names: list[str], **options) -> SpectrogramTransformerTeacher:
        """A new teacher: `preset` (tiny | small | base, default base) plus config overrides."""
        return cls.from_preset(options.pop("preset", "base"), class_names=class_names, **options)

    @property
    def sample_rate(self) -> int:
        return int(self.config.frontend["sample_rate"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def _tokens(self, waveform: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Embedded tokens (B, N, D), the real frame count and the number of time patches."""
        self.check_waveform(waveform)
        feats = self.frontend(waveform)  # (B, F, T)
        mean = feats.mean(dim=(1, 2), keepdim=True)
        std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        feats = (feats - mean) / std
        b, f, t = feats.shape
        pt = self.config.patch_time
        t_p = -(-t // pt)
        if t_p > self.max_time_patches:
            raise BadValueError(
                f"in-house teacher: a {waveform.shape[1] / self.sample_rate:.2f} s clip needs "
                f"{t_p} time patches, more than the {self.max_time_patches} of its "
                f"max_seconds={self.config.max_seconds}; rebuild it with a larger max_seconds"
            )
        feats = F.pad(feats, (0, t_p * pt - t))
        patches = feats.reshape(b, self.freq_patches, self.patch_freq, t_p, pt)
        patches = patches.permute(0, 1, 3, 2, 4).reshape(b, self.freq_patches * t_p, -1)
        x = self.patch_embed(patches) + self.pos_embed[:, :, :t_p].reshape(1, -1, self.config.width)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1)
        return x, t, t_p

    def encode(
        self, waveform: torch.Tensor, need_weights: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor], int, int]:
        """Final normalised tokens (B, N, D), per-layer attentions, real frames, time patches."""
        x, frames, t_p = self._tokens(waveform)
        attentions = []
        for block in self.blocks:
            x, w = block(x, need_weights)
            if w is not None:
                attentions.append(w)
        return self.norm(x), attentions, frames, t_p

    def _logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Clip logits: the head on the CLS token, else on the mean of all tokens. The per-token
        class logits of `forward` (`frame_logits`) are the same head on each time position's
        hidden state: for a mean-pooled teacher they average exactly to the clip logits (the
        head is linear); for a CLS teacher the head was trained on the CLS token only."""
        pooled = tokens[:, 0] if self.cls is not None else tokens.mean(dim=1)
        return self.head(pooled)

    def classify(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits only, through the fused attention kernel (use this to train the teacher)."""
        tokens, _, _, _ = self.encode(waveform, need_weights=False)
        return self._logits(tokens)

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        tokens, attentions, frames, t_p = self.encode(waveform, need_weights=True)
        grid = (self.freq_patches, t_p)
        pt = self.config.patch_time
        row = self.rollout_row(attentions, cls_index=0)
        attention, spans = patch_time_map(
            row, self.framing, grid, pt, pt, self.num_prefix, frames, waveform.shape[1]
        )
        keep = kept_columns(t_p, pt, frames)
        hidden = hidden_to_time(tokens, grid, self.num_prefix, keep)
        return TeacherOutput(
            self._logits(tokens), attention, spans.to(tokens.device), hidden, self.head(hidden)
        )

    def save_pretrained(self, directory: str | Path) -> None:
        config = dataclasses.asdict(self.config)
        config.update(self.rollout_options())
        save_teacher(self, directory, KIND, config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SpectrogramTransformerTeacher:
        """Rebuild a teacher written by `save_pretrained`."""
        config, state, cfg_path = read_teacher(directory, KIND, "in-house teacher")
        teacher = cls(SpectrogramTransformerConfig.from_dict(config, where=str(cfg_path)))
        teacher.load_state_dict(state)
        return teacher
