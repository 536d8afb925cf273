"""Honest dependencies: what the package imports is declared, the core install imports without the
optional extras, and a feature whose extra is missing says which extra to install."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import tomllib

from distill.errors import DistillError, MissingExtraError, UsageError
from distill.extras import require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SOURCES = [ROOT / "distill", ROOT / "students", ROOT / "teachers"]
OWN = {"distill", "students", "teachers", "recipes"}
# Declared but never imported: a constraint that keeps pip on builds that fit torch 2.11.
NOT_IMPORTED = {"torchvision"}
# Distribution -> import name where they differ beyond - and _, for a package not installed here
# (the lean venv of docs/install.md has none of the extras).
IMPORT_NAMES = {"piper-tts": "piper"}
# The extras of a feature each, as opposed to the sets of extras (`all`, `dev`).
FEATURE_EXTRAS = ("hf", "wandb", "tensorboard", "qat", "synth", "report", "mic", "litert")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def _extras() -> dict[str, set[str]]:
    optional = PROJECT["optional-dependencies"]
    return {extra: {_name(r) for r in optional[extra]} for extra in FEATURE_EXTRAS}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level names of the third-party modules the package imports -> the files importing."""
    found: dict[str, set[str]] = {}
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {n.split(".")[0] for n in names} - OWN - set(sys.stdlib_module_names):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _distribution_of(module: str) -> str:
    default = {v: k for k, v in IMPORT_NAMES.items()}.get(module, module)
    return _name((importlib.metadata.packages_distributions().get(module) or [default])[0])


def test_require_returns_the_module_or_names_the_extra() -> None:
    assert require("json", "report", "x") is sys.modules["json"]
    assert isinstance(require("os.path", "report", "x"), types.ModuleType)
    with pytest.raises(MissingExtraError) as info:
        require("no_such_module_xyz.sub", "report", "the report's figures")
    assert str(info.value) == (
        "the report's figures needs no_such_module_xyz.sub: pip install 'temporal-distill[report]'"
    )
    for base in (DistillError, UsageError, ImportError):  # caught as any of them
        assert isinstance(info.value, base), base
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_every_imported_package_is_declared_in_the_core_or_one_extra() -> None:
    core = {_name(r) for r in PROJECT["dependencies"]}
    extras = _extras()
    # `lightning` (the unified package) is optional: the KD callback also subclasses its
    # Callback when it is installed (the `test` extra, to run it under both Lightnings).
    test = {_name(r) for r in PROJECT["optional-dependencies"]["test"]}
    imports = _third_party_imports()
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if _distribution_of(module) not in core.union(test, *extras.values())
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    imported = {_distribution_of(m) for m in imports}
    unused = core - imported - NOT_IMPORTED
    assert not unused, f"declared in the core dependencies but never imported: {sorted(unused)}"
    for extra, dists in extras.items():
        assert not dists & core, f"extra {extra} repeats core dependencies {dists & core}"


def test_all_and_dev_install_every_feature_the_demo_and_tests_need() -> None:
    optional = PROJECT["optional-dependencies"]
    assert optional["all"] == ["temporal-distill[hf,wandb,tensorboard,qat,synth,report]"]
    assert "temporal-distill[all,litert,test]" in optional["dev"]
    assert "onnxscript" not in {_name(r) for r in PROJECT["dependencies"]}


# Run in a fresh interpreter: the optional packages (and their metadata, which Lightning and
# torchmetrics read to decide what to import) are made to look uninstalled.
LEAN = r"""
import importlib, importlib.metadata as md, json, re, sys

blocked_modules, blocked_dists = json.loads(sys.argv[1])
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
from_name = md.Distribution.from_name.__func__

def hidden(cls, name):
    if norm(name) in blocked_dists:
        raise md.PackageNotFoundError(name)
    return from_name(cls, name)

md.Distribution.from_name = classmethod(hidden)
for name in blocked_modules:
    sys.modules[name] = None  # `import name` fails, importlib.util.find_spec(name) is None

import pkgutil
import distill
from distill.errors import MissingExtraError

# Modules that draw with matplotlib; only `distill compare`/`demo`/`attention`/`detect --plot`
# import them, and then they must stop naming the `report` extra.
def needs_report(name):
    return name.startswith("distill.report.") or name == "distill.deploy.detect_plot"

names = [
    info.name
    for package in ("distill", "distill.students", "distill.teachers")
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")
    if not info.name.endswith("__main__")
]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except MissingExtraError as err:
        if not needs_report(name) or "[report]" not in str(err):
            failed[name] = str(err)
    except Exception as err:
        failed[name] = repr(err)
assert not failed, failed
assert "distill.report.plots" not in sys.modules, "report figures imported without matplotlib"
leaked = sorted(m for m in blocked_modules if sys.modules.get(m) is not None)
assert not leaked, leaked

# Core features: a recipe (YAML), students (timm too), the command line.
from distill import students
from distill.config.loader import load_recipe
from distill import cli

load_recipe("kws_tc_resnet8")
students.create("tc_resnet8", num_classes=3)
students.create("mobilenetv3_small", num_classes=3)
try:
    cli.main(["--help"])
except SystemExit as stop:
    assert stop.code == 0, stop.code

def missing(call):
    try:
        call()
    except MissingExtraError as err:
        return str(err)
    return "no error"

import tempfile
from pathlib import Path

from distill.data.synth import rooms, tts, tts_piper
from distill.deploy import litert, pt2e
from distill.pipeline.session import build_loggers
from distill.teachers.hf import HFTeacher

def loggers(on, off):
    cfg = load_recipe("kws_tc_resnet8", [f"logger.{on}=true", f"logger.{off}=false"])
    build_loggers(cfg, Path(tempfile.mkdtemp()))

print(json.dumps({
    "hf": missing(lambda: HFTeacher.from_pretrained("some/model")),
    "qat": missing(lambda: pt2e.quantization_config()),
    "synth": missing(tts._espeak_paths),
    "synth piper": missing(tts_piper._runtime),
    "synth rooms": missing(lambda: rooms._simulate(rooms.RoomTask(0, 0))),
    "report": missing(lambda: importlib.import_module("distill.report.plots")),
    "report detect": missing(lambda: importlib.import_module("distill.deploy.detect_plot")),
    "litert": missing(litert.require_litert),
    "tensorboard": missing(lambda: loggers("tensorboard", "wandb")),
    "wandb": missing(lambda: loggers("wandb", "tensorboard")),
}))
"""


def _blocked() -> tuple[list[str], list[str]]:
    """(top-level modules, distributions) of every optional extra, and of `lightning`."""
    dists = set().union(*_extras().values()) | {"lightning"}
    by_dist: dict[str, set[str]] = {}
    for module, owners in importlib.metadata.packages_distributions().items():
        for owner in owners:
            by_dist.setdefault(_name(owner), set()).add(module)
    modules = {m for d in dists for m in by_dist.get(d, {IMPORT_NAMES.get(d, d.replace("-", "_"))})}
    return sorted(modules - {"pytorch_lightning", "lightning_fabric"}), sorted(dists)


def test_the_core_install_imports_and_names_the_extra_a_feature_needs() -> None:
    modules, dists = _blocked()
    assert {"transformers", "matplotlib", "torchao", "piper", "wandb"} <= set(modules)
    out = subprocess.run(
        [sys.executable, "-c", LEAN, json.dumps([modules, dists])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    messages = json.loads(out.stdout.strip().splitlines()[-1])
    # the feature's words (the part before " needs") are the import site's own
    features = {
        "hf": ("the hf teacher", "transformers"),
        "qat": ("QAT (torchao pt2e)", "torchao"),
        "synth": ("the espeak TTS backend", "espeakng_loader"),
        "synth piper": ("backend piper", "piper"),
        "synth rooms": ("--augment room (simulated rooms)", "pyroomacoustics"),
        "report": ("the report's figures", "matplotlib"),
        "report detect": ("distill detect --plot", "matplotlib"),
        "tensorboard": ("the TensorBoard logger", "tensorboard"),
        "wandb": ("the wandb logger", "wandb"),
    }
    for key, (feature, module) in features.items():
        extra = key.split()[0]
        assert messages[key].startswith(feature), messages[key]
        assert messages[key].endswith(f" needs {module}: pip install 'temporal-distill[{extra}]'")
    assert "pip install 'temporal-distill[litert]'" in messages["litert"]
