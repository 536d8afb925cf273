"""Typed schema of a recipe: every key a recipe may hold, its type and its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from distill.config.ranges import (
    AT_LEAST_1,
    BATCH_LIMIT,
    INDICES,
    NON_NEGATIVE,
    ORDERED_PAIR,
    POSITIVE,
    SEED,
    STEPS,
    UNIT,
    VAL_CHECK,
    Range,
    ranged,
)

# Every numeric field declares its range with `ranged(default, RANGE)` (distill.config.ranges):
# the loader checks it after overrides, before any work; tests/config/test_ranges.py fails on a
# numeric field without one.
WEIGHT_BITS = Range(low=2, high=8)  # the PT2E quantizer's weights (int8 storage)


@dataclass
class FrontendConfig:
    """Waveform-to-features transform shared by students (and spectrogram teachers)."""

    kind: str = "logmel"  # logmel | mfcc
    sample_rate: int = ranged(16000, POSITIVE)
    n_mels: int = ranged(40, AT_LEAST_1)
    n_mfcc: int = ranged(40, AT_LEAST_1)
    n_fft: int = ranged(512, AT_LEAST_1)
    win_length: int = ranged(480, AT_LEAST_1)
    hop_length: int = ranged(160, AT_LEAST_1)
    log_offset: float = ranged(1e-6, POSITIVE)
    # utterance: per clip | running: causal per bin (streams) | frame: per frame | none
    normalize: str = "utterance"
    running_seconds: float = ranged(1.0, POSITIVE)  # time constant of normalize=running


@dataclass
class AugmentConfig:
    """Training-time augmentation of waveforms and features."""

    time_shift_ms: float = ranged(0.0, NON_NEGATIVE)
    noise_prob: float = ranged(0.0, UNIT)
    noise_snr_db: list[float] = ranged([5.0, 20.0], ORDERED_PAIR)
    mixup_alpha: float = ranged(0.0, NON_NEGATIVE)
    specaugment_freq_mask: int = ranged(0, NON_NEGATIVE)
    specaugment_time_mask: int = ranged(0, NON_NEGATIVE)
    specaugment_num_masks: int = ranged(2, NON_NEGATIVE)


@dataclass
class DataConfig:
    """Which dataset, where it lives, and how clips become fixed-length batches."""

    name: str = "synth_kws"  # synth_kws | speech_commands | noisy_speech_commands | fsd50k | folder
    root: str = MISSING
    task: str = "single_label"  # single_label | multi_label
    classes: str = "12"  # 12 | 35 | all | comma-separated words
    # _unknown_ clips kept per split, as a multiple of the mean keyword-class size (0: keep all)
    unknown_ratio: float = ranged(1.0, NON_NEGATIVE)
    sample_rate: int = ranged(16000, POSITIVE)
    clip_seconds: float = ranged(1.0, POSITIVE)
    snr_db: list[float] = ranged([-5.0, 20.0], ORDERED_PAIR)
    crop: str = "center"  # how longer clips are cut at evaluation: center | start | random
    # fixed training mixtures per clip (0: a new mixture every epoch)
    train_variants: int = ranged(0, NON_NEGATIVE)
    # compute student features of the fixed clips once into a memory-mapped cache (needs fixed
    # training audio, i.e. train_variants > 0 when mixing); "" keeps it in <run_dir>/feature_cache
    cache_features: bool = False
    feature_cache_dir: str = ""
    batch_size: int = ranged(64, AT_LEAST_1)
    num_workers: int = ranged(0, NON_NEGATIVE)
    seed: int = ranged(0, SEED)
    skip_bad_files: bool = False
    limit_train: int = ranged(0, NON_NEGATIVE)  # use only the first N training clips (0: all)
    limit_eval: int = ranged(0, NON_NEGATIVE)  # use only the first N validation/test clips (0: all)
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
    # seconds of other clips heard before each training clip, not scored (stateful streaming)
    history_seconds: float = ranged(0.0, NON_NEGATIVE)
    history_from: str = "batch"  # batch: any clip of the batch | fillers: _unknown_/_silence_
    # start from a saved student of the same architecture and classes (a student.safetensors
    # or a run directory holding one), e.g. one trained on shorter clips; None: random weights
    init_from: str | None = None


@dataclass
class TeacherConfig:
    """The frozen attention teacher (or none for plain student training)."""

    # none | a registered kind (inhouse | hf | timm | ...) | dotted path of a Teacher class
    kind: str = "none"
    path: str | None = None  # saved teacher directory (or hub id for kind=hf)
    cache: bool = True  # read teacher outputs from a TeacherCache instead of running it online
    # layers that take part in rollout (None: all); Python-style indices, checked against the
    # teacher's layer count when it is built
    rollout_layers: list[int] | None = ranged(None, INDICES)
    head_fusion: str = "mean"  # mean | max | min
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskLossConfig:
    weight: float = ranged(1.0, NON_NEGATIVE)
    label_smoothing: float = ranged(0.0, UNIT)


@dataclass
class LogitKDConfig:
    weight: float = ranged(0.0, NON_NEGATIVE)
    temperature: float = ranged(4.0, POSITIVE)


@dataclass
class TemporalKDConfig:
    weight: float = ranged(0.0, NON_NEGATIVE)
    target: str = "teacher"  # teacher | span | shuffled | uniform
    direction: str = "forward"  # forward: KL(a_T || a_S); reverse: KL(a_S || a_T)
    temperature: float = ranged(1.0, POSITIVE)  # softens the student's attention logits
    teacher_temperature: float = ranged(1.0, POSITIVE)  # < 1 sharpens the teacher's attention
    use_student_attention: bool = False  # Att-RNN / MHAtt-RNN: their own attention, no extra head


@dataclass
class HintConfig:
    weight: float = ranged(0.0, NON_NEGATIVE)
    distance: str = "mse"  # mse | cosine


@dataclass
class AttentionTransferConfig:
    weight: float = ranged(0.0, NON_NEGATIVE)
    p: float = ranged(2.0, POSITIVE)


@dataclass
class TimedLossConfig:
    """Per-step training of a streaming student (distill.core.losses.timed, docs/timed.md)."""

    weight: float = ranged(0.0, NON_NEGATIVE)
    target: str = "teacher"  # maxpool | teacher | span | shuffled | frame_logit
    window_seconds: float = ranged(0.0, NON_NEGATIVE)  # CNN per-step pooling window; 0: the clip
    region: float = ranged(0.5, UNIT)  # teacher/shuffled: attended where rollout >= region x peak
    temperature: float = ranged(1.0, POSITIVE)  # frame_logit: KD temperature


@dataclass
class CustomLossConfig:
    """A loss term plugged by dotted path: `target` names an nn.Module class whose forward takes
    LossInputs and returns a scalar; it is built with `kwargs` and weighted by `weight` (0: off)."""

    target: str = MISSING
    weight: float = ranged(0.0, NON_NEGATIVE)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossesConfig:
    """Loss terms and their combination: additive (task + sum w*kd) or convex.

    One field per built-in term of distill.core.losses.registry; `custom` maps a name of your
    choosing (it names the term in the logs) to a term plugged by dotted path."""

    weighting: str = "additive"  # additive | convex
    task: TaskLossConfig = field(default_factory=TaskLossConfig)
    logit_kd: LogitKDConfig = field(default_factory=LogitKDConfig)
    temporal_kd: TemporalKDConfig = field(default_factory=TemporalKDConfig)
    hint: HintConfig = field(default_factory=HintConfig)
    attention_transfer: AttentionTransferConfig = field(default_factory=AttentionTransferConfig)
    timed: TimedLossConfig = field(default_factory=TimedLossConfig)
    custom: dict[str, CustomLossConfig] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = ranged(3e-3, POSITIVE)
    weight_decay: float = ranged(1e-3, NON_NEGATIVE)
    momentum: float = ranged(0.9, UNIT)
    warmup_epochs: float = ranged(0.0, NON_NEGATIVE)
    schedule: str = "cosine"  # cosine | constant


@dataclass
class TrainerConfig:
    """Arguments handed to the Lightning Trainer, plus seeding, the callbacks of `distill fit`
    and other Trainer arguments (docs/recipes.md, "Trainer options")."""

    max_epochs: int = ranged(10, AT_LEAST_1)
    # optimizer steps after which training stops, whichever of it and max_epochs comes first
    max_steps: int = ranged(-1, STEPS)  # -1: no step limit
    accumulate_grad_batches: int = ranged(1, AT_LEAST_1)  # batches per optimizer step
    # validation: a fraction of the training epoch (a float in (0, 1]) or every N batches (int)
    val_check_interval: int | float = ranged(1.0, VAL_CHECK)
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = ranged(0, SEED)
    deterministic: bool = False
    gradient_clip_val: float = ranged(0.0, NON_NEGATIVE)  # 0: no clipping
    limit_train_batches: float = ranged(1.0, BATCH_LIMIT)
    limit_val_batches: float = ranged(1.0, BATCH_LIMIT)
    log_every_n_steps: int = ranged(10, AT_LEAST_1)
    progress_bar: bool = True
    monitor: str = "auto"  # metric that picks the best checkpoint (auto: val accuracy or mAP)
    # callbacks of `distill fit`: a built-in name (early_stopping, lr_monitor, ema, swa, ...) or
    # a mapping {name: ..., init_args: {...}} or {class_path: my_pkg.MyCallback, init_args: ...}
    callbacks: list[Any] = field(default_factory=list)
    # other arguments of the Lightning Trainer (e.g. num_sanity_val_steps), applied last; keys
    # with a typed field above or that distill sets itself (logger, plugins, ...) are refused
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConfig:
    """Where metrics go. CSV is always written; wandb never needs a network unless set up."""

    csv: bool = True
    tensorboard: bool = False
    wandb: bool = False  # needs the wandb extra; offline unless you have logged in
    wandb_mode: str = "auto"  # auto | offline | online
    wandb_project: str = "temporal-distill"


@dataclass
class QATConfig:
    enabled: bool = False
    epochs: int = ranged(2, AT_LEAST_1)
    lr: float = ranged(1e-4, POSITIVE)
    weight_bits: int = ranged(8, WEIGHT_BITS)
    fake_quant: str = "deployment"  # deployment: convs ONNX int8 quantizes | all convs | litert
    freeze_bn: bool = False  # BatchNorm normalises with (and keeps) its running statistics


@dataclass
class ExportConfig:
    """Defaults of `distill export RUN` (its --format, --int8/--no-int8, --opset override them)."""

    format: str = "onnx"  # onnx | tflite (LiteRT)
    int8: bool = False  # also write int8 (PTQ, and QAT after `distill qat`)
    opset: int = ranged(18, AT_LEAST_1)  # every ONNX export's default; torch.onnx names its range


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
