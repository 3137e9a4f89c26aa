"""The CLI end to end on digits, with real Keras training."""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, gnas, report, state  # noqa: E402


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[Path, object]:
    run = tmp_path_factory.mktemp("cli") / "run"
    proc = gnas("evolve", "--generations", "2", "--run-dir", run, *TINY)
    return run, proc


def test_run_directory_layout(digits_run):
    run, _ = digits_run
    for name in ("config.toml", "state.json", "evaluations.db", "best/model.keras",
                 "best/architecture.json", "best/summary.json"):
        assert (run / name).exists(), name


def test_summary_names_best_network_and_resume_command(digits_run):
    run, proc = digits_run
    out = proc.stdout
    assert "best architecture: stage 0" in out
    assert "test score:" in out and "parameters:" in out
    assert f"gnas resume {run}" in out
    final = json.loads((run / "best" / "summary.json").read_text())["final_training"]
    assert 1 <= final["best_epoch"] <= final["epochs"] <= 3  # trained to final.max_epochs at most
    assert f"after {final['epochs']} epochs (best {final['best_epoch']}" in out


def test_report_json_has_the_documented_keys(digits_run):
    run, _ = digits_run
    rep = report(run)
    for key in ("dataset", "generation", "evaluations", "failed_evaluations", "init", "lambda_c"):
        assert key in rep
    assert rep["dataset"] == "digits" and rep["generation"] == 2
    best = rep["best"]
    assert set("01") >= set(best["genome"]) and len(best["genome"]) == state(run)["genome_length"]
    for key in ("fitness", "val_error", "test_score", "params", "pruned_fraction", "architecture"):
        assert best[key] is not None, key
    assert 0 <= best["val_error"] <= 1 and 0 <= best["test_score"] <= 100
    assert best["architecture"]["stages"]


def test_every_evaluation_is_a_committed_row_and_cache_prevents_retraining(digits_run):
    run, _ = digits_run
    with sqlite3.connect(run / "evaluations.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute("SELECT genome_key, status, kind FROM evaluations").fetchall()
    keys = [k for k, _, kind in rows if kind == "search"]
    assert len(keys) == len(set(keys)), "a network was trained twice"
    assert len(keys) >= 4


def test_state_checkpoint_has_everything_to_resume(digits_run):
    run, _ = digits_run
    st = state(run)
    assert st["schema_version"] >= 1 and st["finished"] is True
    assert len(st["population"]) == 4 and len(st["fitness"]) == 4
    assert [r["generation"] for r in st["logbook"]] == [0, 1, 2]
    assert st["rng_state"]["bit_generator"] == "PCG64"
    assert st["hall_of_fame"] and st["hall_of_fame"][0]["fitness"] == min(
        e["fitness"] for e in st["hall_of_fame"])


def test_npz_data_set_path(tmp_path):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:300].astype("float32"), y_train=y[:300], x_test=x[300:400],
             y_test=y[300:400])
    run = tmp_path / "run"
    gnas("evolve", "--dataset", path, "--generations", "1", "--run-dir", run, *TINY)
    rep = report(run)
    assert rep["best"]["test_score"] > 10.0
    assert Path(rep["dataset"]).name == "mine.npz"


def test_datasets_command_lists_every_data_set():
    out = gnas("datasets", "--json").stdout
    names = {d["name"] for d in json.loads(out)}
    assert names >= {"digits", "fashion_mnist", "mnist", "cifar10", "cifar100", "boston_housing",
                     "imdb", "reuters"}
    digits = next(d for d in json.loads(out) if d["name"] == "digits")
    assert digits["available"] is True
