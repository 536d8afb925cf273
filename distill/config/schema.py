"""Typed schema of a recipe: every key a recipe may hold, its type and its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class FrontendConfig:
    """Waveform-to-features transform shared by students (and spectrogram teachers)."""

    kind: str = "logmel"  # logmel | mfcc
    sample_rate: int = 16000
    n_mels: int = 40
    n_mfcc: int = 40
    n_fft: int = 512
    win_length: int = 480
    hop_length: int = 160
    log_offset: float = 1e-6
    normalize: str = "utterance"  # utterance: zero mean, unit variance per clip | none


@dataclass
class AugmentConfig:
    """Training-time augmentation of waveforms and features."""

    time_shift_ms: float = 0.0
    noise_prob: float = 0.0
    noise_snr_db: list[float] = field(default_factory=lambda: [5.0, 20.0])
    mixup_alpha: float = 0.0
    specaugment_freq_mask: int = 0
    specaugment_time_mask: int = 0
    specaugment_num_masks: int = 2


@dataclass
class DataConfig:
    """Which dataset, where it lives, and how clips become fixed-length batches."""

    name: str = "synth_kws"  # synth_kws | speech_commands | noisy_speech_commands | fsd50k | folder
    root: str = MISSING
    task: str = "single_label"  # single_label | multi_label
    classes: str = "12"  # 12 | 35 | all | comma-separated words
    # _unknown_ clips kept per split, as a multiple of the mean keyword-class size (0: keep all)
    unknown_ratio: float = 1.0
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    snr_db: list[float] = field(default_factory=lambda: [-5.0, 20.0])
    crop: str = "center"  # how longer clips are cut at evaluation: center | start | random
    train_variants: int = 0  # fixed training mixtures per clip (0: new mixture every epoch)
    # compute student features of the fixed clips once into a memory-mapped cache (needs fixed
    # training audio, i.e. train_variants > 0 when mixing); "" keeps it in <run_dir>/feature_cache
    cache_features: bool = False
    feature_cache_dir: str = ""
    batch_size: int = 64
    num_workers: int = 0
    seed: int = 0
    skip_bad_files: bool = False
    limit_train: int = 0  # use only the first N training clips (0: all)
    limit_eval: int = 0  # use only the first N validation/test clips (0: all)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class StudentConfig:
    """The compact model being trained; `target` names any importable class instead."""

    name: str = "tc_resnet8"
    target: str | None = None
    tap: str | None = None  # submodule whose output carries time (default: the student's own)
    tap_layout: str | None = None  # how to read (B, T', C) from the tapped tensor, e.g. BCFT
    attention_tap: str | None = None  # submodule emitting the student's own attention (B, H, T')
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    """The frozen attention teacher (or none for plain student training)."""

    kind: str = "none"  # none | inhouse | hf | timm
    path: str | None = None  # saved teacher directory (or hub id for kind=hf)
    cache: bool = True  # read teacher outputs from a TeacherCache instead of running it online
    rollout_layers: list[int] | None = None  # layers that take part in rollout (None: all)
    head_fusion: str = "mean"  # mean | max | min
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskLossConfig:
    weight: float = 1.0
    label_smoothing: float = 0.0


@dataclass
class LogitKDConfig:
    weight: float = 0.0
    temperature: float = 4.0


@dataclass
class TemporalKDConfig:
    weight: float = 0.0
    target: str = "teacher"  # teacher | span | shuffled | uniform
    direction: str = "forward"  # forward: KL(a_T || a_S); reverse: KL(a_S || a_T)
    temperature: float = 1.0  # softens the student's attention logits
    teacher_temperature: float = 1.0  # < 1 sharpens the teacher's attention
    use_student_attention: bool = False  # Att-RNN / MHAtt-RNN: their own attention, no extra head


@dataclass
class HintConfig:
    weight: float = 0.0
    distance: str = "mse"  # mse | cosine


@dataclass
class AttentionTransferConfig:
    weight: float = 0.0
    p: float = 2.0


@dataclass
class LossesConfig:
    """Loss terms and their combination: additive (task + sum w*kd) or convex."""

    weighting: str = "additive"  # additive | convex
    task: TaskLossConfig = field(default_factory=TaskLossConfig)
    logit_kd: LogitKDConfig = field(default_factory=LogitKDConfig)
    temporal_kd: TemporalKDConfig = field(default_factory=TemporalKDConfig)
    hint: HintConfig = field(default_factory=HintConfig)
    attention_transfer: AttentionTransferConfig = field(default_factory=AttentionTransferConfig)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 3e-3
    weight_decay: float = 1e-3
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    schedule: str = "cosine"  # cosine | constant


@dataclass
class TrainerConfig:
    """Arguments handed to the Lightning Trainer, plus seeding."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 0
    deterministic: bool = False
    gradient_clip_val: float = 0.0
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    log_every_n_steps: int = 10
    progress_bar: bool = True
    monitor: str = "auto"  # metric that picks the best checkpoint (auto: val accuracy or mAP)


@dataclass
class LoggerConfig:
    """Where metrics go. CSV is always written; wandb never needs a network unless set up."""

    csv: bool = True
    tensorboard: bool = False
    wandb: bool = True
    wandb_mode: str = "auto"  # auto | offline | online
    wandb_project: str = "temporal-distill"


@dataclass
class QATConfig:
    enabled: bool = False
    epochs: int = 2
    lr: float = 1e-4
    weight_bits: int = 8
    fake_quant: str = "deployment"  # deployment: the convs int8 export quantizes | all convs
    freeze_bn: bool = False  # BatchNorm normalises with (and keeps) its running statistics


@dataclass
class ExportConfig:
    format: str = "onnx"
    int8: bool = True
    opset: int = 18


@dataclass
class RecipeConfig:
    """One experiment: data, frontend, teacher, student, losses, training, logging, QAT, export."""

    description: str = ""
    name: str = "run"
    run_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    losses: LossesConfig = field(default_factory=LossesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
