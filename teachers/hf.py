"""Hugging Face `transformers` audio classifiers as teachers (wav2vec 2.0, HuBERT, WavLM, AST).

Input preparation (done here on tensors, matching the models' feature extractors):
- wav2vec 2.0 / HuBERT / WavLM: the raw waveform, standardised per clip
  ((x − mean) / sqrt(var + 1e-7), as `Wav2Vec2FeatureExtractor`) when `do_normalize` is set.
- AST: Kaldi fbank per clip with `torchaudio.compliance.kaldi.fbank` (hanning window, 25 ms /
  10 ms framing, `num_mel_bins`), zero-padded to `max_length` frames, then (x − mean) / (2·std)
  when `do_normalize` is set, as `ASTFeatureExtractor`. Clips longer than `max_length` frames
  are an error (the extractor would silently truncate them).
The settings come from the checkpoint's `preprocessor_config.json` or an explicit
`feature_extractor` dict. Models run with `attn_implementation="eager"` so that attention
weights come back. A teacher saved with `save_pretrained` is a normal Hugging Face directory
(model, feature extractor) plus `teacher.json` holding the pooling and rollout options.

Per-token class logits (`frame_logits`): wav2vec family, `classifier(projector(h))` on each
frame's head input (the last hidden state, or the weighted layer sum when the model uses one):
projector and classifier are linear, so with pooling "mean" they average exactly to the clip
logits, and with "first" frame 0's are the clip logits. AST: the classifier (LayerNorm + Linear)
on each time column's hidden state; the clip logits are it on the mean of the CLS and
distillation tokens, so the head reads tokens it was not trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from distill.teachers.base import Teacher, TeacherOutput
from distill.teachers.registry import register_teacher
from distill.teachers.timemap import (
    Framing,
    conv_framing,
    frame_time_map,
    hidden_to_time,
    kept_columns,
    patch_time_map,
)

from distill.errors import BadValueError
from distill.extras import require

KIND = "hf"
META_FILE = "teacher.json"
WAV2VEC_TYPES = ("wav2vec2", "hubert", "wavlm")
AST_TYPE = "audio-spectrogram-transformer"
POOLINGS = ("mean", "first")
FE_KEYS = {
    "wav2vec": ("sampling_rate", "do_normalize"),
    "ast": ("sampling_rate", "num_mel_bins", "max_length", "do_normalize", "mean", "std"),
}


def _family(model) -> str:
    model_type = getattr(model.config, "model_type", None)
    if model_type in WAV2VEC_TYPES:
        return "wav2vec"
    if model_type == AST_TYPE:
        return "ast"
    raise BadValueError(
        f"hf teacher: model_type {model_type!r} is not supported; supported: "
        f"{[*WAV2VEC_TYPES, AST_TYPE]}"
    )


def _feature_settings(family: str, given: dict, where: str) -> dict:
    keys = FE_KEYS[family]
    missing = [k for k in keys if k not in given]
    if missing:
        raise BadValueError(f"hf teacher ({where}): feature extractor settings lack {missing}")
    return {k: given[k] for k in keys}


@register_teacher(KIND, hf_format=True, from_scratch=False)
class HFTeacher(Teacher):
    """A `*ForSequenceClassification` / `ASTForAudioClassification` model with rollout.

    pooling (wav2vec family only): "mean" over frames after the projector, as the Hugging Face
    head does, or "first": the logits of frame 0 (c1), as the Temporal KD paper classifies.
    """

    default_query = "first"

    def __init__(
        self,
        model,
        feature_extractor: dict,
        pooling: str = "mean",
        head_fusion: str = "mean",
        layers: list[int] | None = None,
        query: str | None = None,
        residual: float = 0.5,
    ) -> None:
        family = _family(model)
        if query is None:
            query = "first" if family == "wav2vec" else "cls"
        super().__init__(head_fusion, layers, query, residual)
        if pooling not in POOLINGS:
            raise BadValueError(f"hf teacher: pooling must be one of {POOLINGS}, got {pooling!r}")
        if family == "ast" and pooling != "mean":
            raise BadValueError(
                "hf teacher: AST pools its CLS and distillation tokens; use pooling='mean'"
            )
        self.family = family
        self.pooling = pooling
        self.fe = _feature_settings(family, feature_extractor, type(model).__name__)
        model.set_attn_implementation("eager")
        self.model = model

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        feature_extractor: dict | None = None,
        local_files_only: bool = True,
        class_names: list[str] | None = None,
        **options,
    ) -> HFTeacher:
        """Load from a local directory or a hub id already in the local cache.

        Options (pooling, head_fusion, layers, query, residual) default to the directory's
        `teacher.json` when present. `feature_extractor` overrides `preprocessor_config.json`.
        `class_names` different from the checkpoint's labels gives a new, randomly initialised
        classification head for those classes (to fine-tune with `distill teach`).
        """
        require("transformers", "hf", "the hf teacher")
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        hint = (
            f"download it first (e.g. `hf download {path}`) or pass a local directory"
            if not Path(path).exists()
            else "check that it holds config.json and the weights of an audio classifier"
        )
        labels: dict = {}
        if class_names is not None:
            labels = {
                "num_labels": len(class_names),
                "id2label": dict(enumerate(class_names)),
                "label2id": {name: i for i, name in enumerate(class_names)},
                "ignore_mismatched_sizes": True,
            }
        try:
            model = AutoModelForAudioClassification.from_pretrained(
                str(path), attn_implementation="eager", local_files_only=local_files_only, **labels
            )
        except (OSError, ValueError) as err:
            raise OSError(f"hf teacher: cannot load model {str(path)!r}: {hint}. ({err})") from err
        meta_path = Path(path) / META_FILE
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            options = {**meta.get("options", {}), **options}
        if feature_extractor is None:
            try:
                fe = AutoFeatureExtractor.from_pretrained(
                    str(path), local_files_only=local_files_only
                )
            except (OSError, ValueError) as err:
                raise OSError(
                    f"hf teacher: no feature extractor (preprocessor_config.json) for "
                    f"{str(path)!r}; save one next to the model or pass "
                    f"feature_extractor={{...}} with keys {list(FE_KEYS[_family(model)])}. ({err})"
                ) from err
            feature_extractor = {
                k: getattr(fe, k) for k in FE_KEYS[_family(model)] if hasattr(fe, k)
            }
        return cls(model, feature_extractor, **options)

    @classmethod
    def start_from(cls, source: str | Path, class_names: list[str], **options) -> HFTeacher:
        """The classifier at `source` to fine-tune on `class_names` (a new, randomly initialised
        head when they differ from the checkpoint's labels)."""
        return cls.from_pretrained(source, class_names=list(class_names), **options).train()

    @property
    def sample_rate(self) -> int:
        return int(self.fe["sampling_rate"])

    @property
    def class_names(self) -> list[str]:
        labels = self.model.config.id2label
        return [str(labels[i]) for i in range(self.model.config.num_labels)]

    def _check_attentions(self, attentions) -> list[torch.Tensor]:
        # transformers 4.x gives None for a layer that returns no weights: every layer under
        # sdpa/flash kernels, a layer skipped by LayerDrop in training (5.x leaves both out)
        attentions = [a for a in attentions or () if a is not None]
        if not attentions:
            raise RuntimeError(
                f"hf teacher: {type(self.model).__name__} returned no attention weights (its "
                f"attn_implementation is {self.model.config._attn_implementation!r}; sdpa and "
                "flash kernels return none). Load it with attn_implementation='eager'."
            )
        return attentions

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        self.check_waveform(waveform)
        if self.family == "wav2vec":
            return self._forward_wav2vec(waveform)
        return self._forward_ast(waveform)

    def _forward_wav2vec(self, waveform: torch.Tensor) -> TeacherOutput:
        m, cfg = self.model, self.model.config
        x = waveform
        if self.fe["do_normalize"]:
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(
                x.var(dim=1, unbiased=False, keepdim=True) + 1e-7
            )
        weighted = bool(getattr(cfg, "use_weighted_layer_sum", False))
        out = m.base_model(x, output_attentions=True, output_hidden_states=weighted)
        attentions = self._check_attentions(out.attentions)
        hidden = out.last_hidden_state
        head_in = hidden
        if weighted:
            stacked = torch.stack(out.hidden_states, dim=1)
            weights = torch.softmax(m.layer_weights, dim=-1).view(-1, 1, 1)
            head_in = (stacked * weights).sum(dim=1)
        projected = m.projector(head_in)
        pooled = projected.mean(dim=1) if self.pooling == "mean" else projected[:, 0]
        logits = m.classifier(pooled)
        framing = conv_framing(cfg.conv_kernel, cfg.conv_stride, self.sample_rate)
        attention, spans = frame_time_map(self.rollout_row(attentions), framing, waveform.shape[1])
        frame_logits = m.classifier(projected)  # linear: their mean over frames is "mean" pooling
        return TeacherOutput(logits, attention, spans.to(logits.device), hidden, frame_logits)

    def fbank(self, waveform: torch.Tensor) -> tuple[torch.Tensor, int]:
        """AST input features (B, max_length, num_mel_bins) and the real frame count."""
        from torchaudio.compliance.kaldi import fbank

        sr, max_len = self.sample_rate, int(self.fe["max_length"])
        feats = [
            fbank(w[None], sample_frequency=sr, window_type="hanning",
                  num_mel_bins=int(self.fe["num_mel_bins"]))
            for w in waveform
        ]  # fmt: skip
        frames = feats[0].shape[0]
        if frames > max_len:
            raise BadValueError(
                f"hf teacher (AST): a {waveform.shape[1] / sr:.2f} s clip gives {frames} fbank "
                f"frames, more than the model's max_length {max_len}; crop the clip"
            )
        x = torch.nn.functional.pad(torch.stack(feats), (0, 0, 0, max_len - frames))
        if self.fe["do_normalize"]:
            x = (x - self.fe["mean"]) / (self.fe["std"] * 2)
        return x, frames

    def _forward_ast(self, waveform: torch.Tensor) -> TeacherOutput:
        m, cfg = self.model, self.model.config
        x, frames = self.fbank(waveform)
        out = m.base_model(x, output_attentions=True)
        attentions = self._check_attentions(out.attentions)
        logits = m.classifier(out.pooler_output)
        f_p = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
        t_p = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
        framing = Framing(self.sample_rate, self.sample_rate // 100, self.sample_rate * 25 // 1000)
        row = self.rollout_row(attentions, cls_index=0)
        attention, spans = patch_time_map(
            row, framing, (f_p, t_p), cfg.patch_size, cfg.time_stride, 2, frames,
            waveform.shape[1],
        )  # fmt: skip
        keep = kept_columns(t_p, cfg.time_stride, frames)
        hidden = hidden_to_time(out.last_hidden_state, (f_p, t_p), 2, keep)
        frame_logits = m.classifier(hidden)  # LayerNorm + Linear on each time column
        return TeacherOutput(logits, attention, spans.to(logits.device), hidden, frame_logits)

    def save_pretrained(self, directory: str | Path) -> None:
        require("transformers", "hf", "the hf teacher")
        from transformers import ASTFeatureExtractor, Wav2Vec2FeatureExtractor

        directory = Path(directory)
        self.model.save_pretrained(str(directory))
        fe_cls = ASTFeatureExtractor if self.family == "ast" else Wav2Vec2FeatureExtractor
        fe_cls(**self.fe).save_pretrained(str(directory))
        options = {"pooling": self.pooling, **self.rollout_options()}
        (directory / META_FILE).write_text(
            json.dumps({"teacher_kind": KIND, "options": options}, indent=2)
        )
