"""experiments/bench_fidelity.py with its Optuna peer: real searches, a real study, one budget."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("optuna")


@pytest.mark.slow
def test_the_peer_spends_the_budget_and_is_delivered_as_gnas_delivers(tmp_path):
    out = tmp_path / "bench"
    budget = 30
    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    sets = ["evolution.population=4", "evolution.generations=1", "evolution.lambda_c=0.881",
            "data.max_train_samples=300", "fidelity.max_epochs=3", "final.max_epochs=3",
            "evolution.final_seeds=1", "evolution.final_candidates=1"]
    proc = subprocess.run([sys.executable, "experiments/bench_fidelity.py", "--seeds", "0",
                           "--arms", "ga-sha,optuna-sha", "--budget-epochs", str(budget), "--out", str(out),
                           *[a for s in sets for a in ("--set", s)]],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("vs_optuna_sha: ") and last.endswith(" pp")

    from arms import epochs_spent, results

    from gnas.config import load_config, parse_set
    from gnas.search.fidelity import epochs_held

    peer = out / "digits-optuna-sha-seed0"
    summary = json.loads((peer / "best" / "summary.json").read_text())
    rows = results(peer)
    cfg = load_config(overrides=parse_set(sets))
    # the study searched exactly its share: the budget less the final trainings' hold
    search_share = budget - epochs_held(cfg)[1]
    assert sum(r.metrics["epochs"] for r in rows) == summary["search_epochs"] == search_share
    assert all(1 <= r.metrics["epochs"] <= 3 for r in rows)
    # the successive-halving pruner stopped some trials at the first rung
    assert any(r.metrics["epochs"] == 1 for r in rows)
    # the delivered network is the best trial that reached the last rung, trained once per final seed
    full = [r for r in rows if r.ok and r.metrics["epochs"] == 3]
    assert full and summary["val_error"] == pytest.approx(min(r.val_error for r in full))
    assert summary["genome"] in {r.genome for r in full}
    assert len(summary["test_scores"]) == 2 and summary["final_epochs"] == [3, 3]
    assert epochs_spent(peer, cfg.train.epochs) == search_share + 6 <= budget
