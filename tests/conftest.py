"""Shared test settings: no downloads, quiet TensorFlow, small CPU footprint, no shared caches.

Every test that may need TensorFlow is marked ``tensorflow`` here, from its source
(:mod:`import_graph`), so ``pytest -m "not tensorflow"`` runs the engine's tests on an
installation without TensorFlow. ``tests/`` and ``experiments/`` are on ``sys.path``
(``pythonpath`` in setup.cfg), so a test imports ``helpers`` or an experiment's module by name.
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

from import_graph import SourceModule

os.environ.setdefault("GNAS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def own_calibration_cache(tmp_path_factory, monkeypatch):
    """Each test its own calibration cache, so no test sees another's sweeps (or the user's)."""
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path_factory.mktemp("gnas-cache")))


@lru_cache(maxsize=1)
def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here (looked up, not imported)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without TensorFlow, a test module that imports it when imported is not collected
    (its tests are all marked ``tensorflow``), so ``-m "not tensorflow"`` collects cleanly."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_") or tensorflow_installed():
        return None
    return True if SourceModule(collection_path).module_reason else None


def tensorflow_reason(item: pytest.Item, modules: dict[Path, SourceModule], shared: SourceModule) -> str:
    """Why ``item`` may need TensorFlow ('' if it cannot): its module, its function, its fixtures."""
    path = Path(str(item.fspath))
    if path not in modules:
        modules[path] = SourceModule(path, helpers=shared.helpers)
    module = modules[path]
    function = module.definition(getattr(item, "originalname", item.name),
                                 item.cls.__name__ if getattr(item, "cls", None) else None)
    fixtures = getattr(item, "fixturenames", ())
    return (module.module_reason or (module.reason(function) if function is not None else "")
            or next((f"fixture {f}: {module.tainted[f]}" for f in fixtures if f in module.tainted), "")
            or next((f"fixture {f}: {shared.tainted[f]}" for f in fixtures if f in shared.tainted), ""))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``tensorflow`` each test that may need TensorFlow (see :class:`import_graph.SourceModule`)."""
    shared = SourceModule(TESTS / "conftest.py", helpers=SourceModule(TESTS / "helpers.py"))
    modules: dict[Path, SourceModule] = {}
    for item in items:
        if why := tensorflow_reason(item, modules, shared):
            item.add_marker(pytest.mark.tensorflow)
            item.user_properties.append(("tensorflow", why))
