"""Datasets, audio I/O, augmentation and the data module of temporal-distill."""

from distill.data.audio import MAX_SPANS, AudioFileError, fix_length, load_audio
from distill.data.augment import SpecAugment, WaveformAugment, build_specaugment, mixup
from distill.data.base import ClipDataset, collate
from distill.data.datamodule import AudioDataModule, EpochSampler, build_datamodule
from distill.data.folder import FolderDataset
from distill.data.fsd50k import FSD50K
from distill.data.noise import NoiseBank
from distill.data.noisy import NoisySpeechCommands
from distill.data.speech_commands import SpeechCommands

__all__ = [
    "MAX_SPANS",
    "FSD50K",
    "AudioDataModule",
    "AudioFileError",
    "ClipDataset",
    "EpochSampler",
    "FolderDataset",
    "NoiseBank",
    "NoisySpeechCommands",
    "SpecAugment",
    "SpeechCommands",
    "WaveformAugment",
    "build_datamodule",
    "build_specaugment",
    "collate",
    "fix_length",
    "load_audio",
    "mixup",
]
