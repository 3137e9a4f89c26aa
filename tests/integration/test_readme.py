"""The README's two commands stay true: CI runs the test command, the search command runs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import gnas, report

from gnas.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The one-line shell commands in the README's 'Two commands' section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```\n(.*?)\n```", section, flags=re.S)]


def test_readme_has_exactly_two_commands():
    search, tests = readme_commands()
    assert search.endswith("gnas evolve") and "pip install" in search
    assert "pip install" in tests and '".[test]"' in tests and "pytest" in tests


def test_readme_stays_short_and_points_into_docs():
    """The README is the front page; the details live in docs/ (tests/integration/test_docs.py checks them)."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "move detail from README.md into docs/"
    assert "(docs/index.md)" in text and (ROOT / "docs" / "index.md").is_file()


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [line.strip() for line in ci], ".ci/run must run the README's test command"


def test_install_metadata_declares_command_and_extras():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "gnas = gnas.cli.main:main" in cfg
    assert re.search(r"^test =", cfg, flags=re.M) and re.search(r"^notebooks =", cfg, flags=re.M)
    assert "build-backend" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_readme_search_command_runs_a_real_search(tmp_path):
    """The README's `gnas evolve`, exactly, in an empty directory (the package is installed)."""
    search, _ = readme_commands()
    command = search.rsplit("&&", 1)[1].split()
    assert command == ["gnas", "evolve"]
    proc = gnas(*command[1:], cwd=tmp_path)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("digits-")
    assert "test score:" in proc.stdout
    rep = report(runs[0])
    assert rep["best"]["test_score"] > 80.0, rep["best"]
    ev = load_config().evolution  # every non-elite slot of the default search is a new network
    slots = ev.population + ev.generations * (ev.population - ev.elite)
    assert rep["trained"] >= 0.9 * slots and rep["reused"] <= 0.1 * slots, rep
