"""Students saved and loaded like hub models: every built-in round-trips, classes of one's own
load by dotted path, hub ids come from the local cache only, pickles are refused unread."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from distill import BadValueError, MissingFileError, students
from distill.config import to_yaml
from distill.config.schema import RecipeConfig
from distill.errors import UnsafeArtifactError
from distill.pipeline import artifacts
from distill.pipeline.artifacts import kd_arm, save_run_pretrained
from distill.pipeline.results import FitResult
from tests.api.parts import CLASSES, TinyStudent


def _shape(name: str) -> tuple[int, int]:
    paper = students.spec(name).paper_input
    return paper if paper else (40, 101)


@pytest.mark.parametrize("name", students.available())
def test_every_builtin_round_trips(name: str, tmp_path: Path) -> None:
    n_features, frames = _shape(name)
    torch.manual_seed(0)
    model = students.create(name, num_classes=4, n_features=n_features).eval()
    folder = students.save_pretrained(model, tmp_path / name, class_names=list("abcd"))
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors",
    ]  # fmt: skip
    loaded = students.from_pretrained(folder)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(2, n_features, frames)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    config = json.loads((folder / "config.json").read_text())
    assert config["name"] == name and config["class_names"] == list("abcd")
    assert config["format"] == "distill.student"


def test_a_class_of_ones_own(tmp_path: Path) -> None:
    built = students.create(TinyStudent, num_classes=3, n_features=40, width=5)
    assert students.created_with(built)["name"] == "tests.api.parts.TinyStudent"
    loaded = students.from_pretrained(students.save_pretrained(built, tmp_path / "a"))
    assert isinstance(loaded, TinyStudent) and loaded.classifier.in_features == 5
    # a model not built by create: its recipe is given by keyword
    plain = TinyStudent(num_classes=3, n_features=40, width=5)
    with pytest.raises(BadValueError, match="give name, num_classes, n_features"):
        students.save_pretrained(plain, tmp_path / "b")
    students.save_pretrained(
        plain, tmp_path / "b", name="tests.api.parts.TinyStudent", num_classes=3, n_features=40,
        kwargs={"width": 5},
    )  # fmt: skip
    assert students.from_pretrained(tmp_path / "b").classifier.in_features == 5


def test_what_could_not_load_back_is_not_written(tmp_path: Path) -> None:
    class Local(torch.nn.Module):
        def __init__(self, num_classes: int, n_features: int) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(n_features, num_classes)

    with pytest.raises(BadValueError, match="inside a function"):
        students.save_pretrained(students.create(Local, num_classes=2), tmp_path / "c")
    model = students.create("tc_resnet8", num_classes=3)
    with pytest.raises(BadValueError, match="unknown key"):
        students.save_pretrained(model, tmp_path / "d", classes=CLASSES)
    with pytest.raises(BadValueError, match="do not fit"):
        students.save_pretrained(model, tmp_path / "e", num_classes=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_create_pretrained_checks_what_was_saved(tmp_path: Path) -> None:
    folder = students.save_pretrained(
        students.create("tc_resnet8_w15", num_classes=3, n_features=40), tmp_path / "s"
    )
    model = students.create("tc_resnet8_1.5", pretrained=folder, num_classes=3)  # an alias
    assert students.created_with(model)["name"] == "tc_resnet8_w15"
    with pytest.raises(BadValueError, match="name 'tc_resnet8'"):
        students.create("tc_resnet8", pretrained=folder)
    with pytest.raises(BadValueError, match="num_classes=5 \\(saved 3\\)"):
        students.create("tc_resnet8_w15", pretrained=folder, num_classes=5)
    with pytest.raises(BadValueError, match="needs num_classes"):
        students.create("tc_resnet8")


def test_pickles_are_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bin_only = tmp_path / "bin_only"
    bin_only.mkdir()
    (bin_only / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafeArtifactError, match="pickled weights \\(pytorch_model.bin\\)"):
        students.from_pretrained(bin_only)
    renamed = tmp_path / "renamed"
    saved = students.save_pretrained(students.create("tc_resnet8", num_classes=3), tmp_path / "ok")
    shutil.copytree(saved, renamed)
    (renamed / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafeArtifactError, match="pickled weights"):
        students.from_pretrained(renamed)
    torch.save({"w": Payload()}, renamed / "model.safetensors")  # torch.save's zip
    with pytest.raises(UnsafeArtifactError, match="pickled weights"):
        students.from_pretrained(renamed / "model.safetensors")
    assert not marker.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingFileError, match="holds no model.safetensors"):
        students.from_pretrained(empty)


def test_config_json_must_agree_with_the_weights(tmp_path: Path) -> None:
    folder = students.save_pretrained(students.create("tc_resnet8", num_classes=3), tmp_path / "s")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_classes": 4}))
    with pytest.raises(BadValueError, match="disagrees .* on num_classes"):
        students.from_pretrained(folder)


def _fake_cache(cache: Path, repo: str, source: Path) -> None:
    """The layout huggingface_hub writes: refs/main names a snapshot folder."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    shutil.copytree(source, root / "snapshots" / revision)


def test_hub_ids_come_from_the_local_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = students.create("bc_resnet1", num_classes=3, n_features=40).eval()
    _fake_cache(tmp_path / "cache", "me/kws", students.save_pretrained(model, tmp_path / "s"))
    loaded = students.from_pretrained("me/kws", cache_dir=tmp_path / "cache")
    x = torch.randn(1, 40, 101)
    torch.testing.assert_close(loaded(x), model(x))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert isinstance(students.from_pretrained("me/kws"), type(model))  # the default cache
    with pytest.raises(MissingFileError, match="'me/absent' .*hf download me/absent"):
        students.from_pretrained("me/absent", cache_dir=tmp_path / "cache")


def test_the_run_format_and_the_hub_format_are_one(tmp_path: Path) -> None:
    model = students.create("tc_resnet8", num_classes=3)
    info = {"name": "tc_resnet8", "num_classes": 3, "n_features": 40, "kwargs": {}}
    artifacts.write_student(tmp_path / "student.safetensors", model.state_dict(), info)
    students.from_pretrained(tmp_path / "student.safetensors")
    folder = students.save_pretrained(model, tmp_path / "s")
    assert artifacts.load_student(folder / "model.safetensors")[1]["name"] == "tc_resnet8"


def _run_dir(tmp_path: Path, **losses: dict) -> Path:
    cfg = OmegaConf.structured(RecipeConfig)
    cfg.name, cfg.data.root = "kws_demo", "/data"
    cfg.teacher.kind, cfg.teacher.path = "inhouse", "runs/teacher"
    cfg = OmegaConf.merge(cfg, {"losses": losses})
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(cfg))
    FitResult(recipe="kws_demo", seed=3, test={"test/acc": 0.75}).write(run / "results.json")
    info = {
        "name": "tc_resnet8", "num_classes": 3, "n_features": 40, "kwargs": {},
        "class_names": CLASSES, "frontend": {"kind": "logmel", "n_mels": 40},
        "clip_seconds": 1.0, "task": "single_label",
    }  # fmt: skip
    model = students.create("tc_resnet8", num_classes=3)
    artifacts.write_student(run / artifacts.STUDENT_FILE, model.state_dict(), info)
    return run


def test_a_run_saves_with_its_model_card(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, logit_kd={"weight": 0.5}, temporal_kd={"weight": 0.25})
    folder = save_run_pretrained(run, tmp_path / "hub")
    card = (folder / "README.md").read_text()
    for text in ["yes, no, up", "kind=logmel", "kws_demo", "logit@0.5+temporal@0.25",
                 "inhouse (runs/teacher)", "| test/acc | 0.7500 |", "library_name"]:  # fmt: skip
        assert text in card, text
    loaded = students.from_pretrained(folder)
    assert students.created_with(loaded)["class_names"] == CLASSES


def test_kd_arm_names() -> None:
    losses = OmegaConf.structured(RecipeConfig).losses
    assert kd_arm(losses) == "none"
    losses.temporal_kd.weight, losses.temporal_kd.target = 0.1, "span"
    assert kd_arm(losses) == "span@0.1"
    losses.attention_transfer.weight = 0.5
    assert kd_arm(losses) == "span@0.1+at@0.5"
