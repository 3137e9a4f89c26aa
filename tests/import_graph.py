"""Imports read from source with ``ast`` (nothing is executed): the graph of gnas' modules,
and which tests may need TensorFlow.

The layering test checks the graph (layers, homes of heavy libraries, no cycles);
``conftest.py`` marks ``tensorflow`` every test that may need TensorFlow, so
``pytest -m "not tensorflow"`` runs the engine's tests on an installation without it.
"""
from __future__ import annotations

import ast
from collections import deque
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gnas"

# Libraries of the TensorFlow stack: a test that reaches one of them needs TensorFlow.
TENSORFLOW = frozenset({"tensorflow", "keras", "tf2onnx", "onnx", "tf_keras"})

# Modules whose use runs code this analysis cannot see (another process, a file loaded
# as a module): a test that uses one is counted as needing TensorFlow.
OUT_OF_SIGHT = frozenset({"subprocess", "multiprocessing", "importlib", "runpy", "nbclient"})


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``gnas/search/loop.py`` -> ``gnas.search.loop``; a package's ``__init__`` is the package."""
    parts = ("gnas",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, names: set[str] | frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``tree``, at any level.

    ``if TYPE_CHECKING:`` imports are included. ``from pkg import name`` gives
    ``pkg.name`` when that is one of ``names`` (a module), else ``pkg``.
    """
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names
                     else node.module) for a in node.names]
    return out


def import_graph(paths: list[Path], root: Path = PACKAGE, at_import: bool = False) -> dict[str, set[str]]:
    """Module -> the modules it imports: gnas modules by name, other libraries by top name.

    ``at_import``: only the imports a module runs when it is imported (those at its
    top level, outside ``if TYPE_CHECKING:``), with the packages they pass through.
    """
    names = {module_name(p, root) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        source = module_name(path, root)
        tree = parse(path)
        found = imported(_top_level(tree) if at_import else tree, names)
        targets = {m if m in names else m.split(".")[0] for _, m in found}
        if at_import:  # importing gnas.a.b runs gnas/__init__ and gnas/a/__init__ first
            targets |= {p for m in targets for p in _parents(m) if p in names}
        graph[source] = targets - {source}
    return graph


def _top_level(tree: ast.Module) -> ast.Module:
    """The statements a module runs when imported: no function bodies, no TYPE_CHECKING blocks."""
    def keep(node: ast.stmt) -> list[ast.stmt]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return []
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return [s for o in node.orelse for s in keep(o)]
        if isinstance(node, ast.ClassDef):
            return [s for b in node.body for s in keep(b)]
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            inner = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                     *[s for h in getattr(node, "handlers", []) for s in h.body]]
            return [s for b in inner for s in keep(b)]
        return [node]
    return ast.Module(body=[s for n in tree.body for s in keep(n)], type_ignores=[])


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    """The shortest import chain from ``start`` to ``goal`` (breadth first); [] if none."""
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph.get(module, ())):
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    if goal not in came_from:
        return []
    chain = [goal]
    while chain[-1] != start:
        chain.append(came_from[chain[-1]])
    return chain[::-1]


def gnas_graph(at_import: bool = False) -> dict[str, set[str]]:
    """gnas' import graph: every import, or (``at_import``) those run when a module is imported."""
    return _gnas_graph(bool(at_import))


@lru_cache(maxsize=2)
def _gnas_graph(at_import: bool) -> dict[str, set[str]]:
    return import_graph(sorted(PACKAGE.rglob("*.py")), at_import=at_import)


@lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    """The syntax tree of ``path`` (read once)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def reaches_tensorflow(module: str, at_import: bool = False) -> bool:
    """Whether ``module`` may import TensorFlow: when it is imported (``at_import``), or at
    all (function-level imports included). A name inside a gnas module counts as the module.
    """
    return _reaches(module, bool(at_import))


@lru_cache(maxsize=None)
def _reaches(module: str, at_import: bool) -> bool:
    graph = gnas_graph(at_import)
    while module not in graph and "." in module:
        module = module.rsplit(".", 1)[0]
    if module not in graph:
        return module.split(".")[0] in TENSORFLOW
    return any(target in TENSORFLOW for target in _closure(graph, module))


def _closure(graph: dict[str, set[str]], module: str) -> set[str]:
    seen, queue = {module}, deque([module])
    while queue:
        for target in graph.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _needs(module: str) -> bool:
    """Whether importing ``module`` and using all of it may need TensorFlow."""
    top = module.split(".")[0]
    return top in TENSORFLOW or top in OUT_OF_SIGHT or (top == "gnas" and reaches_tensorflow(module))


_IN_PROGRESS: set[str] = set()


@lru_cache(maxsize=None)
def gnas_name_reason(target: str) -> str:
    """Why using ``target`` may need TensorFlow ('' if it cannot).

    ``target`` is a gnas module (what importing it runs) or a name in one
    (``gnas.session.strategy_of``: what that function's or class's code may reach,
    following the names it uses into the modules they come from).
    """
    graph = gnas_graph()
    if target in graph:
        return f"importing {target} imports TensorFlow" if reaches_tensorflow(target, at_import=True) else ""
    module, _, name = target.rpartition(".")
    if module not in graph:
        return ""
    if target in _IN_PROGRESS:  # a cycle of names: what the others reach decides
        return ""
    _IN_PROGRESS.add(target)
    try:
        source = _gnas_source(module)
        why = source.module_reason or source.tainted.get(name) or (
            source.tainted.get("__getattr__", "") if name not in source.defined else "")
    finally:
        _IN_PROGRESS.discard(target)
    return f"{target}: {why}" if why else ""


@lru_cache(maxsize=None)
def _gnas_source(module: str) -> "SourceModule":
    return SourceModule(_path_of(module))


def _path_of(module: str) -> Path:
    rel = Path(*module.split(".")[1:])
    package = PACKAGE / rel / "__init__.py"
    return package if package.is_file() else (PACKAGE / rel).with_suffix(".py")


def _imports_by_name(call: ast.Call) -> bool:
    """``pytest.importorskip("keras")``, ``importlib.import_module("tensorflow")`` and the like."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = call.args[0] if call.args else None
    return (called in ("importorskip", "import_module", "__import__", "find_spec")
            and isinstance(first, ast.Constant) and str(first.value).split(".")[0] in TENSORFLOW)


class SourceModule:
    """Which parts of one module (a test's, the helpers', gnas') may need TensorFlow, and why.

    A module-level name needs it when it is bound by an import that reaches
    TensorFlow (or runs code out of sight, or is such a name of ``helpers``), or
    when it is a function or class whose code uses such a name, imports such a
    module itself, or names a TensorFlow library (``pytest.importorskip("keras")``).
    The module as a whole needs it when importing it does, or when one of its
    top-level statements uses such a name. Conservative: a test that may need
    TensorFlow on some path is counted.
    """

    def __init__(self, path: Path, helpers: "SourceModule | None" = None) -> None:
        self.tree = parse(path)
        self.helpers = helpers
        self.modules: dict[str, str] = {}  # name bound to a module -> the module
        self.tainted: dict[str, str] = {}  # module-level name -> why it needs TensorFlow
        self.module_reason = ""
        self.defined = {n.name for n in self.tree.body
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self._bind_imports()
        self._taint_definitions()

    def _bind_imports(self) -> None:
        for node in self.tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    name = a.asname or a.name.split(".")[0]
                    self._bind(name, a.name if a.asname else name, node.lineno, module=True)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    self._bind(a.asname or a.name, f"{node.module}.{a.name}", node.lineno, module=False)
            else:
                continue
            for line, module in imported(node):
                if not self.module_reason and reaches_tensorflow(module, at_import=True):
                    self.module_reason = f"line {line}: importing {module} imports TensorFlow"

    def _bind(self, name: str, target: str, line: int, module: bool) -> None:
        top = target.split(".")[0]
        if module or target in gnas_graph():
            self.modules[name] = target
        if top == "helpers":
            why = self.helpers.tainted.get(target.split(".", 1)[-1]) if self.helpers else "unknown"
            if why:
                self.tainted[name] = f"line {line}: uses {target} ({why})"
        elif top in TENSORFLOW or top in OUT_OF_SIGHT:
            self.tainted[name] = f"line {line}: uses {target}"
        elif top == "gnas" and (why := gnas_name_reason(target)):
            self.tainted[name] = f"line {line}: uses {why}"

    def _taint_definitions(self) -> None:
        """Taint functions and classes until nothing changes, then the module's own statements."""
        defs = [n for n in self.tree.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        changed = True
        while changed:
            changed = False
            for node in defs:
                if node.name not in self.tainted and (why := self.reason(node)):
                    self.tainted[node.name] = why
                    changed = True
        for node in self.tree.body:
            if not self.module_reason and not isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
                self.module_reason = self.reason(node)

    def reason(self, code: ast.AST) -> str:
        """Why running ``code`` may need TensorFlow, or ''."""
        for node in ast.walk(code):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _needs(a.name):
                        return f"line {node.lineno}: imports {a.name}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    if why := self._from_import(node.module, a.name):
                        return f"line {node.lineno}: imports {why}"
            elif isinstance(node, ast.Call) and _imports_by_name(node):
                return f"line {node.lineno}: imports {node.args[0].value!r}"  # type: ignore[attr-defined]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in self.modules:
                module = self.modules[node.value.id]
                why = (gnas_name_reason(f"{module}.{node.attr}") if module.split(".")[0] == "gnas"
                       else module if _needs(module) else "")
                if why:
                    return f"line {node.lineno}: uses {why}"
            elif isinstance(node, ast.Name) and node.id in self.tainted:
                return f"line {node.lineno}: {node.id}: {self.tainted[node.id]}"
        return ""

    def _from_import(self, module: str, name: str) -> str:
        """Why ``from module import name`` inside a function may need TensorFlow, or ''."""
        top = module.split(".")[0]
        if f"{module}.{name}" in gnas_graph():  # a whole module, its uses not followed: all of it
            return f"{module}.{name}" if reaches_tensorflow(f"{module}.{name}") else ""
        if top == "gnas":
            return gnas_name_reason(f"{module}.{name}")
        if top == "helpers" and self.helpers is not None:
            return self.helpers.tainted.get(name, "")
        return module if _needs(module) else ""

    def definition(self, name: str, cls: str | None = None) -> ast.AST | None:
        """The module-level function ``name``, or the method ``name`` of class ``cls``."""
        body = self.tree.body
        if cls is not None:
            body = next((n.body for n in body if isinstance(n, ast.ClassDef) and n.name == cls), [])
        return next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == name), None)
