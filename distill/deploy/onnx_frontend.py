"""The project's frontend (distill.data.frontend) in operators that export to plain ONNX.

`ExportableFrontend` computes the same features as `Frontend` from a waveform batch with Pad
(reflect), Conv (the STFT as a strided convolution with a windowed DFT basis: real and imaginary
rows), element-wise power, a MatMul with the mel matrix, Log, and for MFCC Log10, ReduceMax and
the DCT matrix; so an exported model needs no Python and no FFT operator. A DFT as a
convolution costs n_fft x (n_fft + 2) multiply-adds per frame; onnxruntime runs it at about
1 ms per second of 16 kHz audio on one core (the ONNX STFT operator measured 4x slower).

Supported: `kind` logmel or mfcc, any sample rate, n_mels, n_mfcc, n_fft, win_length <= n_fft,
hop_length, log_offset, `normalize` utterance or none; the torchaudio settings that `Frontend`
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

from distill.data.frontend import Frontend
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


def dft_basis(frontend: Frontend) -> torch.Tensor:
    """Conv1d weight (2 * n_freqs, 1, n_fft): the windowed real and imaginary DFT rows, the
    window zero-padded to n_fft in the centre as torch.stft does."""
    spec = frontend.mel.spectrogram
    n_fft, win = spec.n_fft, spec.win_length
    left = (n_fft - win) // 2
    window = F.pad(spec.window.double(), (left, n_fft - win - left))
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n_fft, dtype=torch.float64)[None]
    angle = 2 * math.pi * k * t / n_fft
    basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
    return basis.float()[:, None, :]


class LogMelFrames(nn.Module):
    """Log-mel frames (B, n_mels, T) of waveform segments (B, N) that are already padded: frame t
    covers samples [t * hop, t * hop + n_fft). Shared by the waveform-in and the stateful model."""

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        check_frontend(frontend)
        mel = frontend.mel if frontend.mfcc is None else frontend.mfcc.MelSpectrogram
        self.hop = mel.spectrogram.hop_length
        self.n_fft = mel.spectrogram.n_fft
        self.n_freqs = self.n_fft // 2 + 1
        self.register_buffer("basis", dft_basis(frontend), persistent=False)
        self.register_buffer("fb", mel.mel_scale.fb.detach().clone().float(), persistent=False)

    def power_mel(self, segments: torch.Tensor) -> torch.Tensor:
        """Mel power (B, n_mels, T) of padded segments (B, N)."""
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
        return feats


class WaveformModel(nn.Module):
    """Frontend + student: waveform (B, N) -> logits (B, C)."""

    def __init__(self, frontend: Frontend, student: nn.Module) -> None:
        super().__init__()
        self.frontend = ExportableFrontend(frontend)
        self.student = student

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.student(self.frontend(waveform))


__all__ = ["ExportableFrontend", "LogMelFrames", "WaveformModel", "check_frontend", "dft_basis"]
