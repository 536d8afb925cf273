"""The teacher registry behind `teacher.kind`: built-ins, custom teachers by dotted path or by
registration in a test-local module, one-line errors for unknown kinds, and the pipeline's
loaders (`load_teacher_for`, `new_teacher`) going through it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distill.teachers.hf import HFTeacher
from distill.teachers.spectrogram_transformer import SpectrogramTransformerTeacher
from distill.teachers.timm_vit import TimmViTTeacher
from omegaconf import DictConfig, OmegaConf

from distill import teachers
from distill.config import RecipeConfig, load_recipe
from distill.core.teacher_source import load_teacher_for
from distill.errors import BadValueError, UsageError
from distill.pipeline.teach import new_teacher

from .custom_teacher import FrameTeacher, RegisteredFrameTeacher

FRAME = "tests.teachers.custom_teacher.FrameTeacher"
NAMES = ["a", "b", "c"]


def recipe(kind: str, path: Path | None = None, **kwargs) -> DictConfig:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.teacher.kind = kind
    cfg.teacher.path = None if path is None else str(path)
    cfg.teacher.kwargs = kwargs
    return cfg


def test_built_in_kinds_declare_what_the_pipeline_needs() -> None:
    assert {"inhouse", "hf", "timm"} <= set(teachers.available())
    inhouse, hf, timm = (teachers.spec(k) for k in ("inhouse", "hf", "timm"))
    assert inhouse.cls is SpectrogramTransformerTeacher and hf.cls is HFTeacher
    assert timm.cls is TimmViTTeacher
    assert inhouse.from_scratch and timm.from_scratch and not hf.from_scratch
    assert hf.hf_format and not inhouse.hf_format and not timm.hf_format
    assert inhouse.recipe_frontend and not timm.recipe_frontend


def test_unknown_kind_is_one_line_naming_the_valid_kinds() -> None:
    for call in (
        lambda: teachers.create("inhous", num_classes=2),
        lambda: load_teacher_for(recipe("inhous", Path("/unused"))),
        lambda: new_teacher(recipe("inhous"), NAMES),
    ):
        with pytest.raises(BadValueError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and "unknown teacher kind 'inhous'" in message
        assert "Did you mean: inhouse?" in message and "Valid kinds: " in message
        assert all(kind in message for kind in ("hf", "inhouse", "timm"))
    with pytest.raises(BadValueError, match="module 'tests.teachers.custom_teacher' has no"):
        teachers.spec("tests.teachers.custom_teacher.Nope")
    with pytest.raises(BadValueError, match="not a subclass of distill.teachers.Teacher"):
        teachers.spec("tests.teachers.custom_teacher.read_teacher")


def test_custom_teacher_by_dotted_path_trains_saves_and_loads(tmp_path: Path) -> None:
    spec = teachers.spec(FRAME)
    assert spec.cls is FrameTeacher and spec.from_scratch and not spec.hf_format
    torch.manual_seed(0)
    fresh = new_teacher(recipe(FRAME, width=4), NAMES)
    assert isinstance(fresh, FrameTeacher) and fresh.width == 4 and fresh.training
    fresh.save_pretrained(tmp_path / "t")
    loaded = load_teacher_for(recipe(FRAME, tmp_path / "t"))
    assert type(loaded) is FrameTeacher and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    wave = torch.randn(2, 16000)
    out, again = fresh.eval()(wave), teachers.load_teacher(tmp_path / "t")(wave)
    for x, y in [(out.logits, again.logits), (out.attention, again.attention)]:
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert out.attention.shape == (2, 10) and out.spans.shape == (10, 2)
    resumed = new_teacher(recipe(FRAME, init_from=str(tmp_path / "t")), NAMES)
    assert resumed.training and all(p.requires_grad for p in resumed.parameters())
    with pytest.raises(BadValueError, match=r"init_from .* has classes \['a', 'b', 'c'\]"):
        new_teacher(recipe(FRAME, init_from=str(tmp_path / "t")), ["a", "b"])
    with pytest.raises(BadValueError, match=r"teacher.kwargs \['width'\] do not apply"):
        new_teacher(recipe(FRAME, init_from=str(tmp_path / "t"), width=2), NAMES)


def test_custom_kind_registered_in_a_test_module() -> None:
    assert "test_frames" in teachers.available()
    spec = teachers.spec("test_frames")
    assert spec.cls is RegisteredFrameTeacher and not spec.from_scratch
    assert teachers.spec("tests.teachers.custom_teacher.RegisteredFrameTeacher") is spec
    with pytest.raises(BadValueError, match="test_frames cannot be trained from scratch: give"):
        new_teacher(recipe("test_frames"), NAMES)
    with pytest.raises(BadValueError, match="'test_frames' is already registered"):
        teachers.register_teacher("test_frames")(FrameTeacher)


def test_kinds_in_the_pipeline_behave_as_declared(tmp_path: Path) -> None:
    fresh = new_teacher(recipe("inhouse", preset="tiny"), NAMES)
    assert isinstance(fresh, SpectrogramTransformerTeacher) and fresh.config.width == 32
    assert fresh.frontend.n_features == 40  # the recipe's frontend section
    with pytest.raises(BadValueError, match="teacher.kind=hf cannot be trained from scratch"):
        new_teacher(recipe("hf"), NAMES)
    with pytest.raises(BadValueError, match="unknown teacher kind 'none'"):
        new_teacher(recipe("none"), NAMES)
    assert load_teacher_for(recipe("none")) is None
    with pytest.raises(FileNotFoundError, match="does not exist: train the teacher first"):
        load_teacher_for(recipe("inhouse", tmp_path / "absent"))
    fresh.save_pretrained(tmp_path / "inhouse")
    with pytest.raises(BadValueError, match="teacher_kind is 'inhouse', expected 'timm'"):
        load_teacher_for(recipe("timm", tmp_path / "inhouse"))
    with pytest.raises(UsageError, match="defines no from_pretrained"):
        teachers.Teacher.from_pretrained(tmp_path)


def test_recipes_accept_a_dotted_teacher_kind() -> None:
    cfg = load_recipe("demo", [f"teacher.kind={FRAME}"])
    assert cfg.teacher.kind == FRAME and teachers.spec(cfg.teacher.kind).cls is FrameTeacher
