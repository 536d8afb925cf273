"""Waveform -> log-mel or MFCC features, (B, N) -> (B, F, T)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torchaudio
from torch import nn

from distill.errors import BadValueError

NORMALIZE = ("utterance", "frame", "running", "none")  # clip | frame | causal per bin | off


class Frontend(nn.Module):
    """Log-mel (`log(mel + offset)`) or MFCC features with torchaudio.

    The defaults follow BC-ResNet: n_fft 512, window 480, hop 160 at 16 kHz, 40 bins, giving
    101 frames per second (centered STFT). `normalize="utterance"` standardises each clip's
    features to zero mean and unit variance (one mean and deviation per clip), which students
    without normalisation at their input (the RNNs) need; `"frame"` standardises each frame
    over its bins (one mean and deviation per frame: level-invariant like "utterance", and
    stateless, so a stream computes it exactly frame by frame); `"running"` standardises each
    bin by its causal exponential moving mean and variance (time constant `running_seconds`,
    started at the first frame: `normalize_running`), which a stream carries as a small state;
    "none" leaves them as they are.
    """

    def __init__(
        self,
        kind: str = "logmel",
        sample_rate: int = 16000,
        n_mels: int = 40,
        n_mfcc: int = 40,
        n_fft: int = 512,
        win_length: int = 480,
        hop_length: int = 160,
        log_offset: float = 1e-6,
        normalize: str = "none",
        running_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in ("logmel", "mfcc"):
            raise BadValueError(f"frontend kind must be 'logmel' or 'mfcc', given {kind!r}")
        if normalize not in NORMALIZE:
            raise BadValueError(
                f"frontend normalize must be one of {NORMALIZE}, given {normalize!r}"
            )
        if not running_seconds > 0:
            raise BadValueError(f"frontend running_seconds must be > 0, given {running_seconds}")
        if win_length > n_fft:
            raise BadValueError(f"frontend win_length ({win_length}) must be <= n_fft ({n_fft})")
        self.kind = kind
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.log_offset = log_offset
        self.normalize = normalize
        self.running_seconds = float(running_seconds)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            n_mels=n_mels,
        )
        self.mfcc = (
            torchaudio.transforms.MFCC(
                sample_rate=sample_rate,
                n_mfcc=n_mfcc,
                melkwargs={
                    "n_fft": n_fft,
                    "win_length": win_length,
                    "hop_length": hop_length,
                    "n_mels": n_mels,
                },
            )
            if kind == "mfcc"
            else None
        )
        self.n_features = n_mfcc if kind == "mfcc" else n_mels

    @property
    def frame_seconds(self) -> float:
        """Seconds between successive feature frames."""
        return self.hop_length / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples."""
        return num_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise BadValueError(
                f"frontend expects a (batch, samples) waveform, got {tuple(waveform.shape)}"
            )
        if self.mfcc is not None:
            feats = self.mfcc(waveform)
        else:
            feats = torch.log(self.mel(waveform) + self.log_offset)
        if self.normalize == "utterance":
            mean = feats.mean(dim=(1, 2), keepdim=True)
            std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            feats = (feats - mean) / std
        elif self.normalize == "frame":
            feats = normalize_frames(feats)
        elif self.normalize == "running":
            feats = normalize_running(feats, self.frame_seconds, self.running_seconds)
        return feats


RUNNING_VARIANCE_FLOOR = 1e-2  # the running variance is clamped here before the square root
_RUNNING_BLOCK = 1024  # frames per cumulative block (fewer when the decay per block is large)


def _wide(device: torch.device) -> torch.dtype:
    # float64 keeps square - mean^2 exact to 1e-10; MPS has no float64
    return torch.float32 if device.type == "mps" else torch.float64


def running_alpha(frame_seconds: float, seconds: float) -> float:
    """The update weight of the exponential moving average per frame: 1 - exp(-frame / tau)."""
    return 1.0 - math.exp(-frame_seconds / seconds)


def running_moments(
    feats: torch.Tensor,
    alpha: float,
    mean: torch.Tensor | None = None,
    square: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal exponential moving mean and mean square (shape of `feats`; float64, float32 on
    MPS) over the last axis of `feats` (..., T): m_t = m_{t-1} + alpha (x_t - m_{t-1}),
    likewise for x_t^2, from `mean` / `square` (...,) before the first frame, or from the
    first frame itself when None.

    Equal to that loop to float64 rounding: per block of frames, m_t = r^(t+1) (m_-1 + alpha
    sum_{j<=t} r^-(j+1) x_j) with r = 1 - alpha, as a cumulative sum.
    """
    x = feats.to(_wide(feats.device))
    if x.shape[-1] == 0:
        return x.clone(), x.clone()
    r = 1.0 - alpha
    m = x[..., 0] if mean is None else mean.to(x.dtype)
    q = x[..., 0] ** 2 if square is None else square.to(x.dtype)
    decay_per_frame = -math.log(r) if r > 0 else math.inf
    block = max(1, min(_RUNNING_BLOCK, int(50.0 / decay_per_frame))) if r > 0 else 1
    means, squares = [], []
    for lo in range(0, x.shape[-1], block):
        part = x[..., lo : lo + block]
        decay = r ** torch.arange(1, part.shape[-1] + 1, dtype=x.dtype, device=x.device)
        means.append(decay * (m[..., None] + alpha * torch.cumsum(part / decay, -1)))
        squares.append(decay * (q[..., None] + alpha * torch.cumsum(part**2 / decay, -1)))
        m, q = means[-1][..., -1], squares[-1][..., -1]
    return torch.cat(means, -1), torch.cat(squares, -1)


def normalize_running(
    feats: torch.Tensor, frame_seconds: float, seconds: float = 1.0
) -> torch.Tensor:
    """Each bin of (..., F, T) features standardised by its causal exponential moving mean and
    variance (time constant `seconds`; frames `frame_seconds` apart), started from the first
    frame: (x_t - m_t) / sqrt(max(q_t - m_t^2, RUNNING_VARIANCE_FLOOR)) with the moving mean
    m_t and mean square q_t of `running_moments`. Frame t depends on frames <= t only, so a
    stream computes it exactly with the state (m, q) per bin."""
    mean, square = running_moments(feats, running_alpha(frame_seconds, seconds))
    return running_standardise(feats, mean, square)


def running_standardise(
    feats: torch.Tensor, mean: torch.Tensor, square: torch.Tensor
) -> torch.Tensor:
    """(feats - mean) / sqrt(max(square - mean^2, floor)), in the moments' dtype, cast to
    feats' dtype."""
    std = (square - mean**2).clamp_min(RUNNING_VARIANCE_FLOOR).sqrt()
    return ((feats.to(mean.dtype) - mean) / std).to(feats.dtype)


def normalize_frames(feats: torch.Tensor) -> torch.Tensor:
    """Each frame of (B, F, T) features at zero mean and unit deviation over its F bins."""
    mean = feats.mean(dim=1, keepdim=True)
    std = feats.std(dim=1, keepdim=True).clamp_min(1e-5)
    return (feats - mean) / std


def frontend_kwargs(**overrides: Any) -> dict[str, Any]:
    """`Frontend`'s keyword arguments at their defaults, updated by `overrides` (e.g. a
    teacher's saved frontend); an unknown key is an error."""
    params = inspect.signature(Frontend.__init__).parameters
    values = {name: p.default for name, p in params.items() if name != "self"}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise BadValueError(f"unknown frontend key(s) {unknown}; valid: {sorted(values)}")
    return {**values, **overrides}


def build_frontend(cfg) -> Frontend:
    """A Frontend from a recipe's `frontend` section."""
    return Frontend(
        kind=cfg.kind,
        sample_rate=cfg.sample_rate,
        n_mels=cfg.n_mels,
        n_mfcc=cfg.n_mfcc,
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        log_offset=cfg.log_offset,
        normalize=cfg.normalize,
        running_seconds=getattr(cfg, "running_seconds", 1.0),
    )
