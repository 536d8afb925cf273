"""Waveform -> log-mel or MFCC features, (B, N) -> (B, F, T)."""

from __future__ import annotations

from distill.errors import BadValueError

import inspect
from typing import Any

import torch
import torchaudio
from torch import nn


class Frontend(nn.Module):
    """Log-mel (`log(mel + offset)`) or MFCC features with torchaudio.

    The defaults follow BC-ResNet: n_fft 512, window 480, hop 160 at 16 kHz, 40 bins, giving
    101 frames per second (centered STFT). `normalize="utterance"` standardises each clip's
    features to zero mean and unit variance (one mean and deviation per clip), which students
    without normalisation at their input (the RNNs) need; "none" leaves them as they are.
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
    ) -> None:
        super().__init__()
        if kind not in ("logmel", "mfcc"):
            raise BadValueError(f"frontend kind must be 'logmel' or 'mfcc', given {kind!r}")
        if normalize not in ("utterance", "none"):
            raise BadValueError(
                f"frontend normalize must be 'utterance' or 'none', given {normalize!r}"
            )
        if win_length > n_fft:
            raise BadValueError(f"frontend win_length ({win_length}) must be <= n_fft ({n_fft})")
        self.kind = kind
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.log_offset = log_offset
        self.normalize = normalize
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
        return feats


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
    )
