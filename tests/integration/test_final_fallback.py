"""A run always delivers: a diverging final training and a budget spent in generation 0.

Real searches on digits. The divergence of a final training is provoked by
making the real executor's final training raise what a diverged training
raises (``EvaluationFailed`` with the trainer's own reason) for one network or
one seed; everything else (training, store, files, the resume from the command
line) is real.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import gnas
from gnas.errors import EvaluationFailed
from gnas.execution.local import LocalExecutor
from gnas.records import derive_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import gnas as gnas_cli  # noqa: E402

pytestmark = pytest.mark.slow

SETTINGS = {"generations": 1, "population": 4, "epochs": 1, "lambda_c": 0.786, "threads": 1,
            "seed": 5, "config": {"evolution.final_seeds": 1, "final.max_epochs": 2}}
DIVERGED = "training diverged (loss inf) at learning rate 0.9"


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:500], y[:500]


def diverging(monkeypatch, fails) -> list:
    """Make the final training raise a divergence where ``fails(genome, seed)``; the calls made."""
    real = LocalExecutor.final
    calls = []

    def final(self, genome, seed, out_dir, options=None, report=None):
        calls.append((genome, seed))
        if fails(genome, seed):
            raise EvaluationFailed(DIVERGED)
        return real(self, genome, seed, out_dir, options, report)

    monkeypatch.setattr(LocalExecutor, "final", final)
    return calls


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_diverging_final_training_delivers_the_next_best_and_resume_keeps_it(digits, tmp_path,
                                                                               monkeypatch):
    run = tmp_path / "run"
    first: list = []
    calls = diverging(monkeypatch, lambda genome, seed: not first and not first.append(genome))
    result = gnas.evolve(*digits, run_dir=run, **SETTINGS)
    summary = result.summary
    fame = json.loads((run / "state.json").read_text())["hall_of_fame"]
    assert summary["final_skipped"] == [{"key": fame[0]["key"], "reason": DIVERGED}]
    assert summary["key"] == fame[1]["key"] != fame[0]["key"]
    assert (run / "best" / "model.keras").is_file() and len(summary["test_scores"]) == 2
    assert calls[0][0] == fame[0]["genome"]
    # Resumed from the command line (nothing diverges there): the delivered network is kept,
    # nothing is trained again, the skipped network is not retried.
    before = digest(run / "best" / "summary.json")
    gnas_cli("resume", str(run))
    assert digest(run / "best" / "summary.json") == before


def test_a_diverging_extra_seed_is_left_out_with_its_reason(digits, tmp_path, monkeypatch):
    run = tmp_path / "run"
    own: list = []

    def fails(genome, seed):
        if not own:
            own.append(seed)  # the first final training: the saved model's own seed
        return seed != own[0]

    diverging(monkeypatch, fails)
    summary = gnas.evolve(*digits, run_dir=run, **SETTINGS).summary
    assert "final_skipped" not in summary
    assert own[0] == derive_seed(5, summary["key"])
    assert len(summary["test_scores"]) == 1
    assert summary["skipped_seeds"][0]["reason"] == DIVERGED
    assert summary["test_score_mean"] == pytest.approx(summary["test_scores"][0])


def test_every_final_training_diverging_is_one_line_and_exit_2(digits, tmp_path, monkeypatch):
    from gnas.errors import FatalError

    diverging(monkeypatch, lambda genome, seed: True)
    with pytest.raises(FatalError, match="final training of each of the .* best networks failed"):
        gnas.evolve(*digits, run_dir=tmp_path / "run", **SETTINGS)


BUDGET_IN_GEN0 = ["--dataset", "digits", "--generations", "3", "--population", "6", "--epochs", "1",
                  "--max-train-samples", "300", "--set", "final.max_epochs=2", "--seed", "3",
                  "--budget", "10", "--lambda-c", "0.881", "--threads", "1"]


def test_a_budget_spent_inside_generation_0_still_delivers(tmp_path):
    run = tmp_path / "run"
    proc = gnas_cli("evolve", *BUDGET_IN_GEN0, "--run-dir", str(run), "-q",
                    env={"GNAS_CACHE_DIR": "off"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads((run / "best" / "summary.json").read_text())
    state = json.loads((run / "state.json").read_text())
    assert state["hall_of_fame"] and summary["key"] == state["hall_of_fame"][0]["key"]
    assert state["trained"] <= 10
    # The delivered network is the best trained one of the store.
    import sqlite3

    with sqlite3.connect(run / "evaluations.db") as conn:
        rows = conn.execute("SELECT genome_key, fitness FROM evaluations WHERE status = 'ok' "
                            "AND kind != 'reseed'").fetchall()
    assert {k for k, _ in rows} >= {e["key"] for e in state["hall_of_fame"]}
    before = digest(run / "best" / "summary.json")
    gnas_cli("resume", str(run), env={"GNAS_CACHE_DIR": "off"})
    assert digest(run / "best" / "summary.json") == before


def test_a_budget_smaller_than_generation_0_delivers_too(tmp_path):
    """Variant: the budget cuts generation 0's own trainings short (no final seeds held back)."""
    run = tmp_path / "run"
    args = [a if a != "10" else "3" for a in BUDGET_IN_GEN0]
    proc = gnas_cli("evolve", *args, "--run-dir", str(run), "-q", env={"GNAS_CACHE_DIR": "off"},
                    check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "best" / "summary.json").read_text())
    assert np.isfinite(summary["test_score"])
