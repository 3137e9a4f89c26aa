"""The layering rule of the package, read from the source (no imports are executed).

TensorFlow and Keras live only in ``gnas/backend/``, Ray only in
``gnas/execution/``, matplotlib only in ``gnas/report/``; imports
point down the layers below, never up, so a reader can take the packages in order;
and no module imports itself back through others (no import cycle, type-only
imports included), so each module of a package can be read before those that use it.
"""
from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gnas"

# Lower layers first; a module may import its own package and anything in an
# earlier layer. Packages in one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("version",),
    ("__init__", "errors"),
    ("records", "config"),
    ("config_reference",),
    ("datasets",),
    ("genome",),
    ("runs",),
    ("inheritance",),
    ("search",),
    ("markov", "competition"),
    ("pruning",),
    ("backend",),
    ("chaos",),
    ("execution",),
    ("report",),
    ("session",),
    ("api",),
    ("cli",),
    ("__main__",),
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
HOMES = {"tensorflow": {"backend"}, "keras": {"backend"}, "ray": {"execution"},
         "matplotlib": {"report"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``path``, including function-level ones."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gnas":
                out += [(node.lineno, f"gnas.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer():
    assert {_package(p) for p in MODULES} <= set(RANK), "add a new package to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_and_heavy_libraries_stay_home(path):
    package = _package(path)
    rel = str(path.relative_to(ROOT))
    wrong = []
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top in HOMES and not any(rel == h or rel.startswith(h + "/") or package == h
                                    for h in HOMES[top]):
            wrong.append(f"line {line}: {module} belongs in {sorted(HOMES[top])}")
        if top == "gnas" and module != "gnas":
            target = module.split(".")[1]
            if target == "__version__":
                target = "__init__"
            if rel == "__init__.py" and target == "api":
                continue  # the package's lazy front door to its public interface, not a layer import
            if target != package and RANK.get(target, -1) >= RANK[package]:
                wrong.append(f"line {line}: {module} is not below {package}")
    assert not wrong, f"{rel}: " + "; ".join(wrong)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check itself can fail: an upward import and a stray TensorFlow import are found."""
    bad = tmp_path / "bad.py"
    bad.write_text("import tensorflow\nfrom gnas.session import start\n")
    found = [m for _, m in _imports(bad)]
    assert found == ["tensorflow", "gnas.session"]
    assert RANK["session"] > RANK["search"] and "search" not in HOMES["tensorflow"]


# Import cycles known today, each named with the modules it joins and why it is
# still there. A cycle found inside the modules of one of these passes; any other
# cycle fails. Remove an entry when its cycle is gone.
KNOWN_CYCLES: dict[str, frozenset[str]] = {
    # The Evaluator is two interfaces in one class: evaluator.py imports zero_masks from
    # export.py, and the training helpers name the Evaluator they read (type-only imports).
    "backend evaluator and its training helpers": frozenset({
        "gnas.backend.evaluator", "gnas.backend.export", "gnas.backend.population",
        "gnas.backend.prune_eval"}),
    # callbacks.py and strategies.py name loop.py's Search / InitialPopulation in annotations only.
    "search loop and the protocols it drives": frozenset({
        "gnas.search.loop", "gnas.search.callbacks", "gnas.search.strategies"}),
}


def _module_name(path: Path) -> str:
    parts = ("gnas",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Module -> the gnas modules it imports (at any level, ``if TYPE_CHECKING`` included).

    ``from gnas.pkg import name`` points at ``gnas.pkg.name`` when that is a module,
    else at the package ``gnas.pkg`` itself.
    """
    names = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for path in paths:
        source = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names
                           else node.module for a in node.names]
            else:
                continue
            graph[source] |= {t for t in targets if t in names and t != source}
    return graph


def _path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    """The shortest import chain from ``start`` to ``goal`` (breadth first); [] if none."""
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module]):
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    if goal not in came_from:
        return []
    chain = [goal]
    while chain[-1] != start:
        chain.append(came_from[chain[-1]])
    return chain[::-1]


def _unexplained_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """For each import on a cycle, the shortest such cycle, unless a known entry explains it.

    A cycle outside every known entry holds a module outside them, or modules of two
    entries, so one of its imports yields a cycle that no entry explains.
    """
    cycles: list[list[str]] = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            back = _path(graph, target, module)
            if not back:
                continue
            cycle = [module] + back
            explained = any(set(cycle) <= known for known in KNOWN_CYCLES.values())
            if not explained and not any(set(cycle) == set(c) for c in cycles):
                cycles.append(cycle)
    return cycles


def test_no_import_cycles():
    cycles = _unexplained_cycles(_import_graph(MODULES))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check itself can fail: two modules importing each other (one for typing only) are found."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from gnas.pkg.b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("from typing import TYPE_CHECKING\n"
                                           "if TYPE_CHECKING:\n    from gnas.pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("import gnas.pkg.a\n")
    cycles = _unexplained_cycles(_import_graph(sorted(tmp_path.rglob("*.py"))))
    assert len(cycles) == 1 and set(cycles[0]) == {"gnas.pkg.a", "gnas.pkg.b"}, cycles
