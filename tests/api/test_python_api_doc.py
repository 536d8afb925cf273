"""docs/python_api.md runs: its `python` blocks, in order, as one script (blocks fenced
`python notest` are shown only). The issue's done-when: a user-defined student and a user-defined
LightningModule distilled with temporal KD from a tiny teacher, saved, reloaded with
`from_pretrained`, whose state dict has exactly the user's keys; under pytorch_lightning and,
when installed, lightning.pytorch."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from distill import students

DOC = Path(__file__).resolve().parents[2] / "docs" / "python_api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```\n", re.S | re.M)
SECTION = re.compile(r"^## ", re.M)
# the sections whose code runs under lightning.pytorch too (DistillModule is pytorch_lightning's)
LIGHTNING_SECTIONS = ("The pieces", "Your own training loop", "Your own LightningModule")


def sections() -> dict[str, str]:
    """Section title -> its runnable code."""
    out = {}
    for part in SECTION.split(DOC.read_text())[1:]:
        title, _, body = part.partition("\n")
        out[title] = "\n".join(BLOCK.findall(body))
    return out


@pytest.fixture
def run_doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Run code as a module of its own (so that its classes import by dotted path)."""
    monkeypatch.chdir(tmp_path)
    name = "python_api_doc"

    def run(source: str) -> dict:
        module = types.ModuleType(name)
        module.__file__ = str(DOC)
        sys.modules[name] = module
        exec(compile(source, str(DOC), "exec"), module.__dict__)
        return module.__dict__

    yield run
    sys.modules.pop(name, None)


def features() -> torch.Tensor:
    return torch.randn(2, 40, 101, generator=torch.Generator().manual_seed(0))


def check_done_when(ns: dict, tmp_path: Path) -> None:
    model, student_cls = ns["model"], ns["TinyStudent"]
    # the user's module holds exactly its own keys, no KD submodule, no hook left behind
    assert set(model.state_dict()) == set(ns["KeywordSpotter"]().state_dict())
    assert "distill_kd" not in dict(model.named_children())
    hooks = [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    assert hooks == []
    # the reloaded student is the user's class with the trained weights
    reloaded = ns["reloaded"]
    assert type(reloaded) is student_cls  # rebuilt from its dotted path
    assert set(reloaded.state_dict()) == set(student_cls(3, 40, width=16).state_dict())
    torch.testing.assert_close(reloaded(features()), model.net.eval()(features()))
    assert (tmp_path / "tiny-student" / "README.md").is_file()


def test_doc_has_the_sections_the_test_runs() -> None:
    found = sections()
    assert all(any(t.startswith(s) for t in found) for s in LIGHTNING_SECTIONS)
    assert all(found[t] for t in found if t.startswith(LIGHTNING_SECTIONS))


def test_doc_runs_with_pytorch_lightning(run_doc, tmp_path: Path) -> None:
    ns = run_doc("\n".join(sections().values()))
    check_done_when(ns, tmp_path)
    assert ns["callback"].kd is None  # detached at the end of fit
    files = sorted(p.name for p in (tmp_path / "bc-student").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    torch.testing.assert_close(ns["same"](features()), ns["loaded"](features()))
    # the from-parts module's student, saved after training
    saved = students.from_pretrained(tmp_path / "tc-student")
    torch.testing.assert_close(saved(features()), ns["module"].student.eval()(features()))


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="lightning not installed")
def test_doc_runs_with_lightning_pytorch(run_doc, tmp_path: Path) -> None:
    import lightning.pytorch

    code = "\n".join(c for t, c in sections().items() if t.startswith(LIGHTNING_SECTIONS))
    assert "import pytorch_lightning as pl" in code
    ns = run_doc(code.replace("import pytorch_lightning as pl", "import lightning.pytorch as pl"))
    assert isinstance(ns["model"], lightning.pytorch.LightningModule)
    assert isinstance(ns["trainer"], lightning.pytorch.Trainer)
    check_done_when(ns, tmp_path)
