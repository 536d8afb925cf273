"""Recipe loading: lookup, overrides, interpolation and the exact validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.cli import main
from distill.config import RecipeError, available_recipes, find_recipe, load_recipe

MINIMAL = """\
description: A tiny recipe for tests
name: tiny
data:
  name: synth_kws
  root: /tmp/nowhere
frontend:
  n_mels: 32
student:
  name: tc_resnet8
  kwargs:
    n_features: ${frontend.n_mels}
"""


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL)
    return path


def test_every_shipped_recipe_loads() -> None:
    recipes = available_recipes()
    assert "kws_tc_resnet8" in recipes
    for name in recipes:
        try:
            cfg = load_recipe(name)
        except RecipeError as err:  # real-data recipes leave the paths to the user
            assert "required key(s) without a value" in str(err), err
            cfg = load_recipe(name, ["data.root=/data", "teacher.path=/teacher"])
        assert cfg.description, f"recipe {name} has no description"


def test_recipe_by_name_and_by_path(recipe: Path) -> None:
    assert find_recipe("kws_tc_resnet8").name == "kws_tc_resnet8.yaml"
    assert load_recipe(str(recipe)).name == "tiny"


def test_unknown_recipe_name_suggests_close_match() -> None:
    with pytest.raises(
        RecipeError, match="no recipe named 'kws_tc_resnet9'; did you mean kws_tc_resnet8"
    ):
        find_recipe("kws_tc_resnet9")


def test_overrides_and_interpolation_after_override(recipe: Path) -> None:
    cfg = load_recipe(
        str(recipe), ["trainer.max_epochs=3", "frontend.n_mels=64", "student.name=bc_resnet1"]
    )
    assert cfg.trainer.max_epochs == 3
    assert cfg.student.name == "bc_resnet1"
    assert cfg.student.kwargs.n_features == 64  # interpolation resolved after the override


def test_overrides_of_a_recipe_read_back_untyped_are_converted_and_checked(recipe: Path) -> None:
    from omegaconf import OmegaConf

    from distill.config import apply_overrides

    saved = OmegaConf.create(OmegaConf.to_container(load_recipe(str(recipe))))  # a checkpoint's
    cfg = apply_overrides(saved, ["qat.lr=1e-5", "optim.lr=3e-3", "trainer.max_epochs=4"])
    assert cfg.qat.lr == 1e-5 and isinstance(cfg.qat.lr, float)
    assert cfg.optim.lr == 3e-3 and cfg.trainer.max_epochs == 4
    with pytest.raises(RecipeError, match="key 'trainer.max_epochs' expects Integer, given 'many'"):
        apply_overrides(saved, ["trainer.max_epochs=many"])


def test_misspelt_key_names_full_path_and_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL + "trainer:\n  max_epoch: 3\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    assert str(err.value) == (
        f"recipe {path}: unknown key 'trainer.max_epoch' (given: 3). Valid keys under 'trainer': "
        "max_epochs, max_steps, accumulate_grad_batches, val_check_interval, accelerator, "
        "devices, strategy, precision, seed, deterministic, gradient_clip_val, "
        "limit_train_batches, limit_val_batches, log_every_n_steps, progress_bar, monitor, "
        "callbacks, kwargs. Did you mean 'trainer.max_epochs'?"
    )


def test_wrong_type_names_key_expected_and_given(recipe: Path) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe), ["data.batch_size=lots"])
    assert str(err.value) == "override: key 'data.batch_size' expects Integer, given 'lots'"


def test_wrong_type_in_recipe_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("n_mels: 32", "n_mels: many"))
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    assert str(err.value) == f"recipe {path}: key 'frontend.n_mels' expects Integer, given 'many'"


def test_bad_override_syntax(recipe: Path) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe), ["trainer.max_epochs"])
    assert str(err.value) == (
        "override 'trainer.max_epochs' is not of the form dotted.key=value "
        "(e.g. trainer.max_epochs=3)"
    )


def test_unknown_override_key(recipe: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"^override: unknown key 'losses.temporal_kd.wieght' \(given: 0.5\)"
    ):
        load_recipe(str(recipe), ["losses.temporal_kd.wieght=0.5"])


def test_missing_required_value(tmp_path: Path) -> None:
    path = tmp_path / "noroot.yaml"
    path.write_text("name: x\ndata:\n  name: synth_kws\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    assert str(err.value) == (
        f"recipe {path}: required key(s) without a value: data.root "
        "(set them in the recipe or override, e.g. data.root=...)"
    )


def test_value_outside_choices(recipe: Path) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(str(recipe), ["losses.temporal_kd.direction=sideways"])
    assert str(err.value) == (
        "key 'losses.temporal_kd.direction' must be one of forward, reverse, given 'sideways'"
    )


def test_qat_fake_quant_scope_is_checked(recipe: Path) -> None:
    assert load_recipe(str(recipe)).qat.fake_quant == "deployment"
    with pytest.raises(RecipeError, match="key 'qat.fake_quant' must be one of deployment, all"):
        load_recipe(str(recipe), ["qat.fake_quant=depthwise"])


def test_section_given_a_scalar(recipe: Path) -> None:
    with pytest.raises(RecipeError, match=r"key 'trainer' must be a mapping of TrainerConfig"):
        load_recipe(str(recipe), ["trainer=5"])


def test_cli_recipes_lists_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "kws_tc_resnet8" in out
    assert "TC-ResNet8 student" in out


def test_cli_show_prints_resolved_config(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recipe), "frontend.n_mels=48"]) == 0
    out = capsys.readouterr().out
    assert "n_features: 48" in out
    assert "${" not in out


def test_cli_show_reports_bad_override(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recipe), "trainer.max_epochs=abc"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "distill: error: override: key 'trainer.max_epochs' expects Integer, given 'abc'"
    )


def test_cli_overrides_may_follow_options(
    recipe: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import distill.pipeline.fit
    from distill.pipeline.results import FitResult

    seen = {}
    monkeypatch.setattr(
        distill.pipeline.fit, "fit", lambda cfg, **kw: seen.update(cfg=cfg, **kw) or FitResult()
    )
    assert (
        main(["fit", str(recipe), "--resume", "--run-dir", "/tmp/r", "trainer.max_epochs=4"]) == 0
    )
    assert seen["cfg"].trainer.max_epochs == 4 and seen["resume"] is True
    with pytest.raises(SystemExit):
        main(["show", str(recipe), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
