"""``--time-budget``: a planned run ends within its budget with a model; bad budgets are refused.

The budgeted run is real (digits, one TensorFlow thread): it measures an epoch,
plans, calibrates within its share, searches and trains the final network, all
within the wall clock it was given, counted from the start of the command.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import gnas  # noqa: E402

BUDGET_S = 75
STARTUP_S = 5  # the interpreter and imports before the command's clock starts


def _digest(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_budgeted_run_plans_fits_its_budget_and_a_resume_may_not_lower_it(tmp_path: Path):
    run = tmp_path / "run"
    began = time.monotonic()
    proc = gnas("evolve", "--time-budget", f"{BUDGET_S}s", "--threads", "1", "--run-dir", str(run),
                env={"GNAS_CACHE_DIR": "off"})
    took = time.monotonic() - began
    assert took <= BUDGET_S + STARTUP_S, f"a {BUDGET_S} s budget took {took:.1f} s"
    assert "gnas: plan for" in proc.stderr and "networks of" in proc.stderr
    assert "of 1:15 budget" in proc.stderr  # the progress line shows the clock against the budget
    assert (run / "best" / "model.keras").is_file()
    assert "test score" in proc.stdout
    spent = json.loads((run / "clock.json").read_text())["spent_s"]
    assert 0 < spent <= BUDGET_S

    before = _digest(run)
    lower = gnas("resume", str(run), "--time-budget", "10s", check=False)
    assert lower.returncode == 2
    assert lower.stderr.strip().count("\n") == 0 and "already spent" in lower.stderr
    assert _digest(run) == before


@pytest.mark.parametrize("value, says", [("0", "positive duration"), ("-5m", "duration"),
                                         ("soon", "duration"), ("20s", "too short")])
def test_a_bad_budget_is_one_line_and_writes_nothing(tmp_path: Path, value: str, says: str):
    run = tmp_path / "run"
    proc = gnas("evolve", f"--time-budget={value}", "--run-dir", str(run), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run.exists()
