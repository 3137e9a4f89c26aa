"""Install metadata true to the code: Python version, dependencies, extras, licence, platforms."""
from __future__ import annotations

import ast
import configparser
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Standard-library modules newer than Python 3.10, with the version that added them.
NEW_STDLIB = {"tomllib": (3, 11)}


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def requirement_names(text: str) -> list[str]:
    return [re.split(r"[\[<>=;! ]", line.strip(), maxsplit=1)[0].lower()
            for line in text.splitlines() if line.strip()]


def imported_modules() -> dict[str, set[str]]:
    """Top-level module name -> the gnas source files that import it (at any depth)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "gnas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_python_requires_covers_every_standard_module_the_code_imports():
    minimum = tuple(int(v) for v in re.search(r">=\s*([\d.]+)", setup_cfg()["options"]["python_requires"])
                    .group(1).split("."))
    used = imported_modules()
    needed = [(version, name) for name, version in NEW_STDLIB.items() if name in used]
    assert needed, "the table of new standard modules no longer matches the code"
    for version, name in needed:
        assert minimum >= version, f"{name} needs Python {version}, python_requires allows {minimum}"
    assert sys.version_info >= minimum


def test_ray_is_an_extra_that_the_test_extra_includes():
    cfg = setup_cfg()
    required = requirement_names(cfg["options"]["install_requires"])
    extras = cfg["options.extras_require"]
    assert "ray" not in required
    assert "ray" in requirement_names(extras["ray"])
    assert "ray" in requirement_names(extras["test"]), "CI installs .[test] and runs the Ray tests"
    assert "filelock" in required


def test_the_benchmark_peer_optuna_is_an_extra_that_gnas_never_imports():
    cfg = setup_cfg()
    extras = cfg["options.extras_require"]
    assert "optuna" not in requirement_names(cfg["options"]["install_requires"])
    assert "optuna" in requirement_names(extras["bench"])
    assert "optuna" in requirement_names(extras["test"]), "CI runs the peer's benchmark test"
    assert "optuna" not in imported_modules()


def test_license_file_is_mit_like_the_metadata():
    cfg = setup_cfg()
    assert cfg["metadata"]["license"] == "MIT"
    assert cfg["metadata"]["license_files"].strip() == "LICENSE"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the gnas developers" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_no_gnas_module_imports_fcntl():
    """fcntl does not exist on Windows: the run lock is filelock's."""
    assert "fcntl" not in imported_modules()


def _python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


WITHOUT = """
    import sys
    sys.modules[{name!r}] = None   # as if it were not installed: importing it fails
    from gnas.cli.main import main
    code = main(sys.argv[1:])
    assert not [m for m in sys.modules if m.startswith({name!r} + ".")], "imported anyway"
    sys.exit(code)
"""


def test_commands_start_without_fcntl(tmp_path: Path):
    proc = _python(WITHOUT.format(name="fcntl"), "datasets", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "digits" in proc.stdout


@pytest.mark.parametrize("flags, asked", [(["--workers", "2"], "--workers 2"),
                                          (["--ray-address", "auto"], "--ray-address auto")])
def test_a_ray_run_without_ray_is_refused_in_one_line_naming_the_extra(tmp_path: Path, flags, asked):
    run = tmp_path / "run"
    proc = _python(WITHOUT.format(name="ray"), "evolve", "--run-dir", str(run), *flags, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"gnas: error: {asked} needs Ray; install it with "
                                   "pip install 'gnas[ray]' or run with --workers 1.")
    assert not run.exists(), "a refused command writes nothing"


@pytest.mark.slow
def test_a_single_machine_run_never_imports_ray(tmp_path: Path):
    """A real one-worker search, with Ray made impossible to import."""
    run = tmp_path / "run"
    proc = _python(WITHOUT.format(name="ray"), "evolve", "--run-dir", str(run), "--workers", "1",
                   "--generations", "1", "--population", "2", "--budget", "2", "--epochs", "1",
                   "--max-train-samples", "200", "--threads", "1", "--lambda-c", "0.786",
                   "--set", "evolution.final_seeds=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run / "evaluations.db").is_file() and "test score:" in proc.stdout
