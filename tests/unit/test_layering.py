"""The layering rule of the package, read from the source (no imports are executed).

TensorFlow and Keras live only in ``gnas/backend/``, Ray only in
``gnas/execution/``, matplotlib only in ``gnas/report/``; imports
point down the layers below, never up, so a reader can take the packages in order;
and no module imports itself back through others (no import cycle, type-only
imports included), so each module of a package can be read before those that use it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from import_graph import SourceModule, import_graph, shortest_path

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
    ("markov", "competition", "tabular"),
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


def _gnas_only(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between gnas' own modules (other libraries dropped)."""
    return {m: {t for t in targets if t in graph} for m, targets in graph.items()}


def _unexplained_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """For each import on a cycle, the shortest such cycle, unless a known entry explains it.

    A cycle outside every known entry holds a module outside them, or modules of two
    entries, so one of its imports yields a cycle that no entry explains.
    """
    cycles: list[list[str]] = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            back = shortest_path(graph, target, module)
            if not back:
                continue
            cycle = [module] + back
            explained = any(set(cycle) <= known for known in KNOWN_CYCLES.values())
            if not explained and not any(set(cycle) == set(c) for c in cycles):
                cycles.append(cycle)
    return cycles


def test_no_import_cycles():
    cycles = _unexplained_cycles(_gnas_only(import_graph(MODULES, ROOT)))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path):
    """The check itself can fail: two modules importing each other (one for typing only) are found."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from gnas.pkg.b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("from typing import TYPE_CHECKING\n"
                                           "if TYPE_CHECKING:\n    from gnas.pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("import gnas.pkg.a\n")
    cycles = _unexplained_cycles(_gnas_only(import_graph(sorted(tmp_path.rglob("*.py")), tmp_path)))
    assert len(cycles) == 1 and set(cycles[0]) == {"gnas.pkg.a", "gnas.pkg.b"}, cycles


def test_the_tensorflow_marker_follows_what_each_test_uses(tmp_path):
    """conftest.py marks `tensorflow` from this reading: a test is marked when what it uses
    (its code, the helpers and fixtures it calls, the gnas names it imports) may import
    TensorFlow or runs code out of sight; a test of the engine alone is not."""
    (tmp_path / "helpers.py").write_text(
        "import subprocess\n\ndef cli():\n    return subprocess.run(['gnas'])\n\ndef plain():\n    return 1\n")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "from gnas.config import load_config\n"
        "from gnas.search.strategies import GeneticAlgorithm\n"
        "from helpers import cli, plain\n\n"
        "def test_engine():\n    load_config(); plain(); GeneticAlgorithm\n\n"
        "def test_cli():\n    cli()\n\n"
        "def test_keras():\n    pytest.importorskip('keras')\n\n"
        "def test_builder():\n    from gnas.backend.builder import build_model\n\n"
        "@pytest.fixture\ndef evaluator():\n    from gnas.backend.evaluator import Evaluator\n\n"
        "def uses_it(evaluator):\n    pass\n")
    module = SourceModule(tmp_path / "test_x.py", helpers=SourceModule(tmp_path / "helpers.py"))
    reasons = {name: module.reason(module.definition(name))
               for name in ("test_engine", "test_cli", "test_keras", "test_builder")}
    assert reasons["test_engine"] == "" and not module.module_reason, reasons
    assert "subprocess" in reasons["test_cli"] and "keras" in reasons["test_keras"], reasons
    assert "gnas.backend.builder" in reasons["test_builder"] and "evaluator" in module.tainted
