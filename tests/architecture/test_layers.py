"""The package's imports run one way, top to bottom, and every package folder is installed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
# Installed import name -> folder (pyproject's package-dir).
FOLDERS = {
    "distill": ROOT / "distill",
    "distill.students": ROOT / "students",
    "distill.teachers": ROOT / "teachers",
    "distill.recipes": ROOT / "recipes",
}
# Layers, bottom (0) to top. A module may import from a lower layer or from its own package.
LAYERS = {
    "distill._version": 0,
    "distill.errors": 0,
    "distill.dotted": 1,  # import_class(): a user class from a recipe's dotted path
    "distill.names": 1,  # register_name(), did_you_mean(): shared by the registries
    "distill.extras": 1,  # require(): an optional dependency, or the extra that installs it
    "distill.files": 0,
    "distill.cost": 1,
    "distill.distributed": 1,
    "distill.recipes": 0,  # YAML files
    "distill.config": 1,
    "distill.students": 2,
    "distill.data": 3,
    "distill.teachers": 4,
    "distill.core": 5,
    "distill.caches": 6,
    "distill.pipeline": 7,
    "distill.analysis": 8,
    "distill.deploy": 8,
    "distill.report": 9,
    "distill.experiments": 10,
    "distill.commands": 11,
    "distill.cli": 12,
    "distill.__main__": 13,
    # __init__: the public names, loaded lazily from every layer; no module imports it
    "distill": 14,
}


def modules() -> dict[str, Path]:
    """Every module of the installed package, by its import name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *rel))
            found[name.removesuffix(".__init__")] = path
    return found


def layer_of(name: str) -> tuple[str, int]:
    """(layer key, rank) of a module: its longest prefix in LAYERS."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in LAYERS:
            return key, LAYERS[key]
    raise KeyError(f"module {name} is in no layer: add its package to LAYERS")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that `name` imports (module level and inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate in known:
                found.add(candidate)
                break
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_import_goes_up_a_layer() -> None:
    upward = []
    for name, targets in import_graph().items():
        key, rank = layer_of(name)
        for target in targets:
            target_key, target_rank = layer_of(target)
            if target_key != key and target_rank >= rank:
                upward.append(
                    f"{name} ({key}, {rank}) imports {target} ({target_key}, {target_rank})"
                )
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ re-exporting its own submodules is not a cycle of the design
    cycles = [c for c in cycles if not _within_package(c.split(" -> "))]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _within_package(path: list[str]) -> bool:
    """Whether a cycle runs only through a package and its own submodules."""
    package = path[0]
    return all(p == package or p.startswith(package + ".") for p in path)


def test_pyproject_installs_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    packages = {n for n, p in modules().items() if p.name == "__init__.py"}
    assert packages == listed, f"missing {packages - listed}, stale {listed - packages}"
    assert {k: str(ROOT / v) for k, v in config["package-dir"].items()} == {
        k: str(v) for k, v in FOLDERS.items()
    }


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    path = tmp_path / "data_mod.py"
    path.write_text("from distill.pipeline.fit import fit\n")
    targets = imports_of("distill.data.fake", path, {"distill.pipeline.fit"})
    assert targets == {"distill.pipeline.fit"}
    with pytest.raises(KeyError):
        layer_of("elsewhere.module")
    # a cycle between two sibling modules whose names share a prefix is a cycle
    assert not _within_package(["distill.a.detect", "distill.a.detect_plot", "distill.a.detect"])
    assert _within_package(["distill.a", "distill.a.b", "distill.a"])
