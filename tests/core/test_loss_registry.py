"""The loss-term registry: built-ins declared once, arms and needs read from it, and a custom term
plugged by dotted path from a recipe override alone."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from distill.teachers.base import TeacherOutput
from omegaconf import OmegaConf
from torch import nn

from distill.config import RecipeConfig, RecipeError, load_recipe
from distill.config.schema import LossesConfig
from distill.core.losses import LossInputs, WeightedLosses
from distill.core.losses.arms import ARM_TOKENS, CONTROL_TOKENS, DEFAULT_WEIGHTS, Arm
from distill.core.losses.registry import (
    LossContext,
    available,
    distillation_off,
    loss_needs,
    loss_signature,
    spec,
    specs,
)
from distill.core.module import DistillModule
from distill.errors import BadValueError
from distill.experiments.compare import _needs_teacher_cache

CUSTOM = "tests.core.custom_loss.TemporalCentroid"
B, K, STEPS, C, T_TEACHER, D = 4, 5, 6, 8, 10, 12


# -- the registry ---------------------------------------------------------------------------
def test_registry_lists_the_built_ins_in_build_order() -> None:
    assert available() == [
        "task",
        "logit_kd",
        "temporal_kd",
        "hint",
        "attention_transfer",
        "timed",
    ]
    assert [s.name for s in specs() if not s.distills] == ["task"]


def test_every_built_in_has_its_schema_section_and_every_section_a_term() -> None:
    fields = {f.name: f for f in dataclasses.fields(LossesConfig)}
    sections = set(fields) - {"weighting", "custom"}
    assert sections == set(available())
    for s in specs():
        assert fields[s.name].default_factory is s.config, s.name


def test_arm_tokens_resolve_as_before() -> None:
    assert ARM_TOKENS == {
        "none": (None, {}),
        "logit": ("logit_kd", {}),
        "temporal": ("temporal_kd", {"target": "teacher"}),
        "span": ("temporal_kd", {"target": "span"}),
        "shuffled": ("temporal_kd", {"target": "shuffled"}),
        "uniform": ("temporal_kd", {"target": "uniform"}),
        "hint": ("hint", {}),
        "at": ("attention_transfer", {}),
        "maxpool": ("timed", {"target": "maxpool"}),
        "teacher_timed": ("timed", {"target": "teacher"}),
        "span_timed": ("timed", {"target": "span"}),
        "shuffled_timed": ("timed", {"target": "shuffled"}),
        "frame_logit": ("timed", {"target": "frame_logit"}),
        "clip": (None, {}),
    }
    assert CONTROL_TOKENS == ("span", "shuffled", "uniform", "span_timed", "shuffled_timed")
    assert DEFAULT_WEIGHTS == {
        "logit_kd": 0.5,
        "temporal_kd": 0.25,
        "hint": 0.1,
        "attention_transfer": 0.5,
        "timed": 1.0,
    }
    cfg = OmegaConf.structured(RecipeConfig)
    assert Arm("at+shuffled@0.2").overrides(cfg) == [
        "losses.logit_kd.weight=0.0",
        "losses.temporal_kd.weight=0.2",
        "losses.hint.weight=0.0",
        "losses.attention_transfer.weight=0.5",
        "losses.timed.weight=0.0",
        "losses.temporal_kd.target=shuffled",
        "losses.timed.target=teacher",
    ]


@pytest.mark.parametrize(
    ("settings", "needs"),
    [
        ({}, set()),
        ({"logit_kd.weight": 0.5}, {"teacher"}),
        ({"temporal_kd.weight": 0.2}, {"teacher", "features"}),
        ({"temporal_kd.weight": 0.2, "temporal_kd.target": "span"}, {"features", "spans"}),
        ({"temporal_kd.weight": 0.2, "temporal_kd.target": "uniform"}, {"features"}),
        ({"temporal_kd.weight": 0.2, "temporal_kd.target": "shuffled"}, {"teacher", "features"}),
        (
            {"temporal_kd.weight": 0.2, "temporal_kd.use_student_attention": True},
            {"teacher", "student_attention"},
        ),
        ({"hint.weight": 0.1}, {"teacher", "features", "hidden"}),
        ({"attention_transfer.weight": 0.1}, {"teacher", "features"}),
        ({"temporal_kd.target": "span"}, set()),  # weight 0: off, needs nothing
        ({"timed.weight": 1.0, "timed.target": "maxpool"}, {"frames"}),
        ({"timed.weight": 1.0, "timed.target": "span"}, {"frames", "spans"}),
        ({"timed.weight": 1.0}, {"frames", "teacher"}),
        ({"timed.weight": 1.0, "timed.target": "frame_logit"}, {"frames", "teacher"}),
    ],
)
def test_needs_follow_the_active_terms_and_their_settings(settings: dict, needs: set) -> None:
    cfg = OmegaConf.structured(LossesConfig)
    for key, value in settings.items():
        OmegaConf.update(cfg, key, value)
    assert loss_needs(cfg) == needs


# -- every built-in term on a small random batch ---------------------------------------------
def random_inputs(task: str = "single_label", with_spans: bool = True) -> LossInputs:
    g = torch.Generator().manual_seed(0)
    spans = torch.full((B, 2, 2), float("nan"))
    if with_spans:
        spans[0, 0] = torch.tensor([0.1, 0.4])
        spans[1, 0] = torch.tensor([0.5, 0.9])
        spans[1, 1] = torch.tensor([0.0, 0.2])
    target = (
        torch.randint(0, K, (B,), generator=g)
        if task == "single_label"
        else (torch.rand(B, K, generator=g) > 0.5).float()
    )
    return LossInputs(
        logits=torch.randn(B, K, generator=g),
        target=target,
        time_features=torch.randn(B, STEPS, C, generator=g),
        student_attention=torch.softmax(torch.randn(B, 2, STEPS, generator=g), dim=-1),
        teacher_logits=torch.randn(B, K, generator=g),
        teacher_attention=torch.softmax(torch.randn(B, T_TEACHER, generator=g), dim=-1),
        teacher_hidden=torch.randn(B, T_TEACHER, D, generator=g),
        spans=spans,
        clip_seconds=1.0,
        frame_logits=torch.randn(B, STEPS, K, generator=g),
        step_seconds=torch.arange(1, STEPS + 1) / STEPS,
        teacher_frame_logits=torch.randn(B, T_TEACHER, K, generator=g),
    )


VARIANTS = [
    ("task", "single_label", {}),
    ("task", "multi_label", {}),
    ("task", "single_label", {"label_smoothing": 0.1}),
    ("logit_kd", "single_label", {}),
    ("logit_kd", "multi_label", {"temperature": 2.0}),
    ("temporal_kd", "single_label", {}),
    ("temporal_kd", "single_label", {"direction": "reverse", "teacher_temperature": 0.5}),
    ("temporal_kd", "single_label", {"target": "span"}),
    ("temporal_kd", "single_label", {"target": "shuffled"}),
    ("temporal_kd", "single_label", {"target": "uniform"}),
    ("temporal_kd", "single_label", {"use_student_attention": True}),
    ("hint", "single_label", {}),
    ("hint", "single_label", {"distance": "cosine"}),
    ("attention_transfer", "single_label", {}),
    ("attention_transfer", "single_label", {"p": 1.0}),
    ("timed", "single_label", {}),
    ("timed", "single_label", {"target": "maxpool"}),
    ("timed", "single_label", {"target": "span"}),
    ("timed", "single_label", {"target": "shuffled"}),
    ("timed", "single_label", {"target": "frame_logit", "temperature": 2.0}),
    ("timed", "multi_label", {"target": "maxpool"}),
    ("timed", "multi_label", {}),
]
CLASSES = ("a", "b", "c", "_unknown_", "_silence_")  # K names: keywords and fillers (timed)


def build(name: str, task: str, settings: dict) -> nn.Module:
    term_cfg = OmegaConf.merge(OmegaConf.structured(spec(name).config), settings)
    torch.manual_seed(0)
    context = LossContext(task, channels=C, teacher_dim=D, class_names=CLASSES, frame_window=3)
    return spec(name).build(term_cfg, context)


def test_the_variants_cover_every_registered_term() -> None:
    assert {name for name, _, _ in VARIANTS} == set(available())


@pytest.mark.parametrize(("name", "task", "settings"), VARIANTS)
def test_every_built_in_term_is_finite_and_positive(name: str, task: str, settings: dict) -> None:
    value = build(name, task, settings)(random_inputs(task))
    assert value.dim() == 0
    assert math.isfinite(value.item()) and value.item() > 0, (name, settings, value)


def test_span_target_without_any_span_is_exactly_zero() -> None:
    """Clips without a span take no part; a batch of only such clips gives exactly 0."""
    term = build("temporal_kd", "single_label", {"target": "span"})
    assert term(random_inputs(with_spans=False)).item() == 0.0


# -- a custom term by dotted path ------------------------------------------------------------
class AttentionTeacher(nn.Module):
    """A stand-in teacher with attention on the second half of the clip."""

    def forward(self, waveform: torch.Tensor) -> TeacherOutput:
        b = waveform.shape[0]
        attention = torch.zeros(b, 40)
        attention[:, 20:] = 1 / 20
        return TeacherOutput(torch.zeros(b, 12), attention, torch.zeros(40, 2))


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    text = {"name": "tiny", "data": {"root": "/unused"}, "student": {"name": "tc_resnet8"}}
    path.write_text(yaml.safe_dump(text))
    return path


def plug(name: str = "centroid", target: str = CUSTOM, weight: float = 0.5) -> list[str]:
    prefix = f"losses.custom.{name}"
    return [f"{prefix}.target={target}", f"{prefix}.weight={weight}", f"{prefix}.kwargs.scale=4"]


def module_of(cfg) -> DistillModule:
    classes = [str(i) for i in range(12)]
    return DistillModule(cfg, 12, "single_label", classes, clip_seconds=1.0)


def test_custom_term_plugged_by_override_trains_and_is_logged(recipe: Path) -> None:
    cfg = load_recipe(str(recipe), plug())
    torch.manual_seed(0)
    module = module_of(cfg)
    assert list(module.aux.terms) == ["task", "centroid"]
    assert module.aux.weights == {"task": 1.0, "centroid": 0.5}
    assert module.aux.needs_teacher and module._tap is not None
    assert module.aux.terms["centroid"].scale == 4.0
    module.set_teacher_source(AttentionTeacher())
    g = torch.Generator().manual_seed(0)
    batches = [
        {"waveform": torch.randn(16000, generator=g), "label": i % 12, "clip_id": f"c{i}"}
        for i in range(8)
    ]
    query_before = module.aux.terms["centroid"].query.weight.detach().clone()
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=4))
    logged = trainer.callback_metrics["train/centroid_step"].item()
    assert math.isfinite(logged) and logged > 0
    assert not torch.equal(query_before, module.aux.terms["centroid"].query.weight)
    assert "aux.terms.centroid.query.weight" in module.state_dict()
    assert not any("query" in k for k in module.student_state_dict())


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "tests.core.custom_loss.Missing",
            "losses.custom.centroid.target: module 'tests.core.custom_loss' has no attribute "
            "'Missing'",
        ),
        ("no_such_package.Term", "cannot import 'no_such_package.Term'"),
        ("Term", "'Term' is not a dotted path to a class"),
        (
            "tests.core.custom_loss.not_a_term",
            "'tests.core.custom_loss.not_a_term' is not an nn.Module class (got function)",
        ),
    ],
)
def test_unknown_target_is_refused_in_one_line(recipe: Path, target: str, message: str) -> None:
    cfg = load_recipe(str(recipe), plug(target=target))
    with pytest.raises(BadValueError) as err:
        module_of(cfg)
    assert message in str(err.value)
    assert "losses.custom.centroid.target" in str(err.value)
    assert "\n" not in str(err.value)


def test_misspelt_custom_keys_are_refused_naming_the_key(recipe: Path) -> None:
    target = f"losses.custom.centroid.target={CUSTOM}"
    with pytest.raises(RecipeError, match=r"losses\.custom\.centroid\.wieght"):
        load_recipe(str(recipe), [target, "losses.custom.centroid.wieght=1"])
    with pytest.raises(RecipeError, match=r"without a value: losses\.custom\.centroid\.target"):
        load_recipe(str(recipe), ["losses.custom.centroid.weight=0.1"])
    cfg = load_recipe(str(recipe), [*plug(), "losses.custom.centroid.kwargs.scael=2"])
    with pytest.raises(BadValueError, match=r"^losses\.custom\.centroid\.kwargs: TemporalCentroid"):
        module_of(cfg)
    cfg = load_recipe(str(recipe), plug(name="hint"))
    with pytest.raises(BadValueError, match=r"^losses\.custom\.hint: the name must be"):
        module_of(cfg)


def test_untyped_custom_sections_are_checked_too() -> None:
    """A config built in Python or read back from a checkpoint is checked like a recipe."""
    cfg = OmegaConf.to_container(OmegaConf.structured(RecipeConfig))
    cfg["data"]["root"] = "/unused"
    cfg["losses"]["custom"] = {"centroid": {"weight": 0.1}}
    with pytest.raises(BadValueError, match=r"^losses\.custom\.centroid\.target is required"):
        module_of(cfg)
    cfg["losses"]["custom"] = {"centroid": {"target": CUSTOM, "weight": 0.1, "wieght": 1}}
    with pytest.raises(BadValueError, match=r"^losses\.custom\.centroid: Key 'wieght'"):
        module_of(cfg)
    cfg["losses"]["custom"] = {"centroid": {"target": CUSTOM, "weight": 0.1}}
    assert list(module_of(cfg).aux.terms) == ["task", "centroid"]


def test_custom_term_off_at_weight_zero_and_in_eval(recipe: Path) -> None:
    off = load_recipe(str(recipe), plug(weight=0.0))
    assert list(WeightedLosses(off.losses, "single_label").terms) == ["task"]
    bad = load_recipe(str(recipe), plug(target="no_such_package.Term", weight=0.0))
    with pytest.raises(BadValueError, match="cannot import 'no_such_package.Term'"):
        WeightedLosses(bad.losses, "single_label")  # refused even while off
    cfg = load_recipe(str(recipe), [*plug(), "losses.temporal_kd.weight=0.3"])
    eval_cfg = OmegaConf.merge(cfg, {"losses": distillation_off(cfg.losses)})
    assert list(WeightedLosses(eval_cfg.losses, "single_label").terms) == ["task"]
    assert loss_needs(eval_cfg.losses) == frozenset()


def test_signature_ignores_switched_off_settings_and_a_missing_custom_section(
    recipe: Path,
) -> None:
    cfg = load_recipe(str(recipe), ["losses.temporal_kd.weight=0.3"])
    old = OmegaConf.to_container(cfg.losses)
    del old["custom"]  # a checkpoint written before `losses.custom` existed
    assert loss_signature(OmegaConf.create(old)) == loss_signature(cfg.losses)
    hint_setting = load_recipe(
        str(recipe), ["losses.temporal_kd.weight=0.3", "losses.hint.distance=cosine"]
    )
    assert loss_signature(hint_setting.losses) == loss_signature(cfg.losses)
    weight = load_recipe(str(recipe), ["losses.temporal_kd.weight=0.2"])
    assert loss_signature(weight.losses) != loss_signature(cfg.losses)


def test_teacher_cache_need_includes_custom_terms(recipe: Path) -> None:
    teacher = ["teacher.kind=inhouse", "teacher.path=/unused"]
    cfg = load_recipe(str(recipe), teacher)
    assert not _needs_teacher_cache(cfg, [Arm("none"), Arm("span"), Arm("uniform")])
    assert _needs_teacher_cache(cfg, [Arm("none"), Arm("shuffled")])
    custom = load_recipe(str(recipe), [*teacher, *plug()])
    assert _needs_teacher_cache(custom, [Arm("none")])
    online = load_recipe(str(recipe), [*teacher, *plug(), "teacher.cache=false"])
    assert not _needs_teacher_cache(online, [Arm("logit")])
