"""Smoke run of experiments/coe_vs_random.py: real searches, CSV, plots and summary."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_smoke_experiment_writes_csv_plots_and_summary(tmp_path):
    out = tmp_path / "exp"
    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "experiments/coe_vs_random.py", "--smoke", "--lambda-c", "0.881",
                           "--max-train-samples", "200", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].startswith("command: ")
    with (out / "generations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted({(r["init"], int(r["generation"])) for r in rows}) == [
        (init, g) for init in ("coe", "random") for g in range(3)]
    for column in ("best_val_loss", "mean_val_loss", "diversity", "entropy", "lambda",
                   "log10_learning_rate_std", "momentum_std", "mutation_rate_std", "crossover_rate_std"):
        assert column in rows[0]
    first_coe = next(r for r in rows if r["init"] == "coe" and r["generation"] == "0")
    assert float(first_coe["lambda_c"]) == 0.881
    for name in ("loss.png", "diversity.png", "hyperparameters.png"):
        assert (out / name).read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"coe", "random", "paired", "convergence"}
    assert summary["paired"] == []  # one seed: nothing to pair
    runs = summary["convergence"]["runs"]
    assert [(r["init"], r["seed"]) for r in runs] == [("coe", 0), ("random", 0)]
    assert all(set(r) == {"init", "seed", "wright_fisher", "operators", "operators_without_selection",
                          "operators_hindsight", "wright_fisher_settling", "operators_mixing", "observed",
                          "observed_best_fitness", "mutated_share_run", "mutated_share_forecast"} for r in runs)
    # two generations are too few for a plateau: neither the observed nor a forecast is defined
    assert all(r["observed"] is None and r["operators"] is None and r["operators_hindsight"] is None
               for r in runs)
    assert all(0 < r["mutated_share_run"] <= 1 and 0 < r["mutated_share_forecast"] <= 1 for r in runs)
    assert summary["coe"]["generations"] == 2 and summary["coe"]["lambda_c"] == [0.881]
