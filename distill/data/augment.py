"""Augmentation driven by `AugmentConfig`.

Contract for distillation: the teacher must hear exactly what the student hears.
- Waveform augmentation (time shift, noise mixing) is applied *inside the dataset item*
  (`WaveformAugment`, training split only), so the batch waveform is what both models see and
  the item's `offset`/`spans` already account for it.
- `SpecAugment` acts on the student's features only (after the frontend); the teacher never
  sees features, so it needs no counterpart.
- `mixup` is batch-level and meant for the task loss: it returns mixed inputs and soft targets.
  A cached teacher has no outputs for mixed audio, so use mixup either without teacher losses
  or with an online teacher fed the same mixed waveform.
"""

from __future__ import annotations

from distill.errors import BadValueError

import numpy as np
import torch
import torchaudio
from torch import nn

from distill.data.audio import noise_scale, power, shift_spans
from distill.data.noise import NoiseBank


class WaveformAugment:
    """Random time shift (zero fill) then, with probability `noise_prob`, added background noise
    at an SNR drawn uniformly from `noise_snr_db`. Called per item with the item's generator."""

    def __init__(
        self,
        sample_rate: int,
        clip_seconds: float,
        time_shift_ms: float = 0.0,
        noise_prob: float = 0.0,
        noise_snr_db: tuple[float, float] | list[float] = (5.0, 20.0),
        noise_bank: NoiseBank | None = None,
    ) -> None:
        if time_shift_ms < 0:
            raise BadValueError(f"augment.time_shift_ms must be >= 0, given {time_shift_ms}")
        if not 0.0 <= noise_prob <= 1.0:
            raise BadValueError(f"augment.noise_prob must be in [0, 1], given {noise_prob}")
        if len(noise_snr_db) != 2 or noise_snr_db[0] > noise_snr_db[1]:
            raise BadValueError(f"augment.noise_snr_db must be [low, high], given {noise_snr_db}")
        if noise_prob > 0 and noise_bank is None:
            raise BadValueError(
                "augment.noise_prob > 0 needs a noise bank (a _background_noise_ "
                "folder in the data root)"
            )
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.max_shift = int(round(time_shift_ms * sample_rate / 1000.0))
        self.noise_prob = float(noise_prob)
        self.snr = (float(noise_snr_db[0]), float(noise_snr_db[1]))
        self.noise_bank = noise_bank

    @property
    def active(self) -> bool:
        return self.max_shift > 0 or self.noise_prob > 0

    def __call__(
        self, wave: torch.Tensor, offset: int, spans: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Augmented (wave, offset, spans); offset/spans follow the shift."""
        n = wave.shape[-1]
        if self.max_shift > 0:
            s = int(rng.integers(-self.max_shift, self.max_shift + 1))
            if s != 0:
                shifted = torch.zeros_like(wave)
                if s > 0:
                    shifted[s:] = wave[: n - s]
                else:
                    shifted[: n + s] = wave[-s:]
                wave, offset = shifted, offset - s
                spans = shift_spans(spans, s / self.sample_rate, self.clip_seconds)
        if self.noise_prob > 0 and rng.random() < self.noise_prob:
            noise, _, _ = self.noise_bank.segment(n, rng)
            snr = float(rng.uniform(*self.snr))
            p_noise = power(noise)
            if p_noise > 0:
                wave = wave + noise_scale(power(wave), p_noise, snr) * noise
        return wave, offset, spans


def build_waveform_augment(
    cfg, sample_rate: int, clip_seconds: float, noise_bank: NoiseBank | None
) -> WaveformAugment | None:
    """A WaveformAugment from an `augment` section, or None when it does nothing."""
    aug = WaveformAugment(
        sample_rate,
        clip_seconds,
        time_shift_ms=float(cfg.time_shift_ms),
        noise_prob=float(cfg.noise_prob),
        noise_snr_db=list(cfg.noise_snr_db),
        noise_bank=noise_bank,
    )
    return aug if aug.active else None


class SpecAugment(nn.Module):
    """Frequency and time masks on (B, F, T) features, independent per example; identity in
    eval mode or when both mask parameters are 0. Apply to the student's features only."""

    def __init__(self, freq_mask: int = 0, time_mask: int = 0, num_masks: int = 2) -> None:
        super().__init__()
        if freq_mask < 0 or time_mask < 0 or num_masks < 0:
            raise BadValueError(
                f"SpecAugment parameters must be >= 0, given freq_mask={freq_mask}, "
                f"time_mask={time_mask}, num_masks={num_masks}"
            )
        self.num_masks = num_masks
        self.freq = (
            torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)
            if freq_mask > 0
            else None
        )
        self.time = (
            torchaudio.transforms.TimeMasking(time_mask, iid_masks=True) if time_mask > 0 else None
        )

    @property
    def active(self) -> bool:
        return self.num_masks > 0 and (self.freq is not None or self.time is not None)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return features
        if features.dim() != 3:
            raise BadValueError(
                f"SpecAugment expects (batch, freq, time), got {tuple(features.shape)}"
            )
        x = features.unsqueeze(1)  # (B, 1, F, T): iid masks per example
        for _ in range(self.num_masks):
            if self.freq is not None:
                x = self.freq(x)
            if self.time is not None:
                x = self.time(x)
        return x.squeeze(1)


def build_specaugment(cfg) -> SpecAugment:
    """A SpecAugment from an `augment` section."""
    return SpecAugment(
        int(cfg.specaugment_freq_mask),
        int(cfg.specaugment_time_mask),
        int(cfg.specaugment_num_masks),
    )


def mixup(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Batch mixup: (mixed inputs, soft targets (B, C), lambda, permutation).

    `targets` are class indices (B,) (then `num_classes` is needed) or (B, C) multi-hot/soft
    targets. lambda ~ Beta(alpha, alpha). For the task loss only (see module doc).
    """
    if alpha <= 0:
        raise BadValueError(f"mixup alpha must be > 0, given {alpha}")
    if targets.dim() == 1:
        if num_classes is None:
            raise BadValueError("mixup with class-index targets needs num_classes")
        soft = torch.nn.functional.one_hot(targets.long(), num_classes).to(inputs.dtype)
    else:
        soft = targets.to(inputs.dtype)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
    mixed = lam * inputs + (1.0 - lam) * inputs[perm]
    return mixed, lam * soft + (1.0 - lam) * soft[perm], lam, perm
