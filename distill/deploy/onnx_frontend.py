"""The project's frontend (distill.data.frontend) in operators that export to plain ONNX.

`ExportableFrontend` computes the same features as `Frontend` from a waveform batch with Pad
(reflect), the STFT power spectrum in convolution and matrix operators, a MatMul with the mel
matrix, Log, and for MFCC Log10, ReduceMax and the DCT matrix; so an exported model needs no
Python and no FFT operator. The power spectrum is a two-stage DFT (`distill.deploy.split_dft`:
a grouped convolution and a MatMul, 51 k multiply-adds per 512-point frame) where n_fft and the
hop share a factor, else the direct DFT as one strided convolution with a windowed basis
(n_fft x (n_fft + 2) multiply-adds per frame; the ONNX STFT operator measured 4x slower).

Supported: `kind` logmel or mfcc, any sample rate, n_mels, n_mfcc, n_fft, win_length <= n_fft,
hop_length, log_offset, `normalize` utterance, frame, running (any `running_seconds`) or none;
the torchaudio settings that `Frontend`
uses (power 2, centred frames with reflect padding, Hann window, no STFT normalisation, MFCC
with an 80 dB `top_db` floor and orthonormal DCT). `check_frontend` refuses anything else by
name. MFCC detail kept from torchaudio: the 80 dB floor sits below the maximum over the whole
batch, so MFCC features of one clip depend on the clips scored with it (as in training).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from distill.data.frontend import RUNNING_VARIANCE_FLOOR, Frontend, running_alpha
from distill.deploy.split_dft import SplitDFTPower, split_plan
from distill.errors import UsageError


def check_frontend(frontend: Frontend) -> None:
    """Refuse, by name, a frontend setting that `ExportableFrontend` does not reproduce."""
    spec = frontend.mel.spectrogram
    settings = {
        "power": (spec.power, 2.0),
        "center": (spec.center, True),
        "pad_mode": (spec.pad_mode, "reflect"),
        "normalized": (spec.normalized, False),
        "onesided": (spec.onesided, True),
        "pad": (spec.pad, 0),
    }
    if frontend.mfcc is not None:
        settings["mfcc.log_mels"] = (frontend.mfcc.log_mels, False)
        settings["mfcc.amplitude_to_DB.stype"] = (frontend.mfcc.amplitude_to_DB.stype, "power")
        settings["mfcc.norm"] = (frontend.mfcc.norm, "ortho")
        spec = frontend.mfcc.MelSpectrogram.spectrogram
        settings["mfcc.power"] = (spec.power, 2.0)
    bad = [f"{k}={v!r} (supported: {ok!r})" for k, (v, ok) in settings.items() if v != ok]
    hann = torch.hann_window(spec.win_length, periodic=True, dtype=spec.window.dtype)
    if spec.window.shape != hann.shape or not torch.allclose(spec.window, hann):
        bad.append("window (supported: a periodic Hann window)")
    if bad:
        raise UsageError(f"the frontend cannot be exported to ONNX: {'; '.join(bad)}")


def padded_window(frontend: Frontend) -> torch.Tensor:
    """The STFT window (n_fft,) in float64, zero-padded to n_fft in the centre as torch.stft
    does."""
    spec = frontend.mel.spectrogram
    n_fft, win = spec.n_fft, spec.win_length
    left = (n_fft - win) // 2
    return F.pad(spec.window.double(), (left, n_fft - win - left))


def dft_basis(frontend: Frontend) -> torch.Tensor:
    """Conv1d weight (2 * n_freqs, 1, n_fft): the windowed real and imaginary DFT rows."""
    n_fft = frontend.mel.spectrogram.n_fft
    window = padded_window(frontend)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n_fft, dtype=torch.float64)[None]
    angle = 2 * math.pi * k * t / n_fft
    basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
    return basis.float()[:, None, :]


class LogMelFrames(nn.Module):
    """Log-mel frames (B, n_mels, T) of waveform segments (B, N) that are already padded: frame t
    covers samples [t * hop, t * hop + n_fft). Shared by the waveform-in and the stateful model.
    The power spectrum is the split DFT of `distill.deploy.split_dft` where the frame and hop
    allow it (`split=False`, or no fitting factor: the direct DFT basis as one convolution)."""

    def __init__(self, frontend: Frontend, split: bool = True) -> None:
        super().__init__()
        check_frontend(frontend)
        mel = frontend.mel if frontend.mfcc is None else frontend.mfcc.MelSpectrogram
        self.hop = mel.spectrogram.hop_length
        self.n_fft = mel.spectrogram.n_fft
        self.n_freqs = self.n_fft // 2 + 1
        fb = mel.mel_scale.fb.detach().clone().float()
        n2 = split_plan(self.n_fft, self.hop) if split else None
        self.split = (
            None if n2 is None else SplitDFTPower(padded_window(frontend), self.hop, n2, fb)
        )
        if self.split is None:
            self.register_buffer("basis", dft_basis(frontend), persistent=False)
            self.register_buffer("fb", fb, persistent=False)

    def power_mel(self, segments: torch.Tensor) -> torch.Tensor:
        """Mel power (B, n_mels, T) of padded segments (B, N)."""
        if self.split is not None:
            return self.split(segments)
        spec = F.conv1d(segments[:, None, :], self.basis, stride=self.hop)
        power = spec[:, : self.n_freqs] ** 2 + spec[:, self.n_freqs :] ** 2
        return torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2)


class ExportableFrontend(nn.Module):
    """`Frontend`'s features (B, F, T) of a waveform batch (B, N), in exportable operators."""

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        self.frames = LogMelFrames(frontend)
        self.pad = self.frames.n_fft // 2
        self.log_offset = float(frontend.log_offset)
        self.normalize = frontend.normalize
        self.alpha = running_alpha(frontend.frame_seconds, frontend.running_seconds)
        self.mfcc = frontend.mfcc is not None
        if self.mfcc:
            self.top_db = float(frontend.mfcc.top_db)
            self.amin = float(frontend.mfcc.amplitude_to_DB.amin)
            self.register_buffer("dct", frontend.mfcc.dct_mat.detach().clone(), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        padded = F.pad(waveform[:, None, :], (self.pad, self.pad), mode="reflect")[:, 0]
        mel = self.frames.power_mel(padded)
        if self.mfcc:
            db = 10.0 * torch.log10(torch.clamp(mel, min=self.amin))
            peak = db.amax(dim=(0, 1, 2), keepdim=True)  # one floor for the whole batch
            db = torch.maximum(db, peak - self.top_db)
            feats = torch.matmul(db.transpose(1, 2), self.dct).transpose(1, 2)
        else:
            feats = torch.log(mel + self.log_offset)
        if self.normalize == "utterance":
            mean = feats.mean(dim=(1, 2), keepdim=True)
            std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            feats = (feats - mean) / std
        elif self.normalize == "frame":
            feats = frame_standardise(feats)
        elif self.normalize == "running":
            feats = running_standardise_clip(feats, self.alpha)
        return feats


def frame_standardise(feats: torch.Tensor) -> torch.Tensor:
    """`normalize_frames` in plain operators: each frame of (B, F, T) at zero mean and unit
    (unbiased) deviation over its F bins, the deviation floored at 1e-5."""
    mean = feats.mean(dim=1, keepdim=True)
    var = ((feats - mean) ** 2).sum(dim=1, keepdim=True) / (feats.shape[1] - 1)
    return (feats - mean) / torch.clamp(torch.sqrt(var), min=1e-5)


def running_standardise_clip(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """`normalize_running` of whole clips (B, F, T) in plain operators (T dynamic): the moving
    mean and mean square as a product with the (T, T) lower-triangular weights
    W[t, k] = alpha r^(t-k) (k >= 1), W[t, 0] = r^t, r = 1 - alpha; the features are shifted by
    their first frame first (the variance does not change) so that float32 keeps it."""
    r = 1.0 - alpha
    time = torch.arange(feats.shape[-1], dtype=feats.dtype)
    lag = time[:, None] - time[None, :]
    power = r ** torch.clamp(lag, min=0.0)
    weights = torch.where(time[None, :] == 0, power, alpha * power) * (lag >= 0).to(feats.dtype)
    x = feats - feats[..., :1]
    mean = torch.matmul(x, weights.t())
    square = torch.matmul(x * x, weights.t())
    var = torch.clamp(square - mean * mean, min=RUNNING_VARIANCE_FLOOR)
    return (x - mean) / torch.sqrt(var)


class StepNormalizer(nn.Module):
    """The frontend's normalisation of the `n` frames (1, F, n) of one stateful step; for
    "running" the state is the moving mean and variance per bin ((F,) each; the variance
    equals the mean square minus the squared mean, carried so that float32 keeps it). On the
    first call (`first` = 1) the first `phantom` frames stand before the stream start: the
    state starts at frame `phantom` and holds over those before it."""

    def __init__(self, frontend: Frontend, phantom: int) -> None:
        super().__init__()
        self.kind, self.phantom = frontend.normalize, phantom
        if self.kind == "utterance":
            raise UsageError("normalize='utterance' needs the whole clip; it cannot stream")
        self.alpha = running_alpha(frontend.frame_seconds, frontend.running_seconds)
        self.n_mels = frontend.n_features

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.n_mels,), (self.n_mels,)] if self.kind == "running" else []

    def forward(
        self, x: torch.Tensor, first: torch.Tensor, state: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(normalised frames (1, F, n), next state)."""
        if self.kind == "frame":
            return frame_standardise(x), []
        if self.kind != "running":
            return x, []
        a, hold = self.alpha, 1.0 - first
        mean = first * x[0, :, self.phantom] + hold * state[0]
        var = hold * state[1]
        outs = []
        for t in range(x.shape[-1]):
            d = x[0, :, t] - mean
            new_mean, new_var = mean + a * d, (1.0 - a) * (var + a * d * d)
            if t < self.phantom:  # before the stream start on the first call: hold
                new_mean = mean + hold * (new_mean - mean)
                new_var = var + hold * (new_var - var)
            mean, var = new_mean, new_var
            outs.append(
                (x[0, :, t] - mean) / torch.sqrt(torch.clamp(var, min=RUNNING_VARIANCE_FLOOR))
            )
        return torch.stack(outs, dim=-1)[None], [mean, var]


class WaveformModel(nn.Module):
    """Frontend + student: waveform (B, N) -> logits (B, C)."""

    def __init__(self, frontend: Frontend, student: nn.Module) -> None:
        super().__init__()
        self.frontend = ExportableFrontend(frontend)
        self.student = student

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.student(self.frontend(waveform))


__all__ = [
    "ExportableFrontend",
    "LogMelFrames",
    "StepNormalizer",
    "WaveformModel",
    "check_frontend",
    "dft_basis",
    "padded_window",
    "frame_standardise",
    "running_standardise_clip",
]
