"""The layering rule of the package, read from the source (no imports are executed).

TensorFlow and Keras live only in ``gnas/backend/``, Ray only in
``gnas/execution/``, matplotlib only in ``gnas/report/``; and imports
point down the layers below, never up, so a reader can take the packages in order.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gnas"

# Lower layers first; a module may import its own package and anything in an
# earlier layer. Packages in one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors"),
    ("records", "config"),
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
