"""Strategies and the budget with real (tiny) training, in one process to share TensorFlow."""
from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from gnas import session
from gnas.config import load_config
from gnas.runs.directory import RunDir
from gnas.search.strategies import aging_batch

TINY = {"evolution.population": 3, "train.epochs": 1, "data.max_train_samples": 300,
        "train.threads": 1, "evolution.lambda_c": 0.8, "evolution.seed": 5,
        "space.stage_nodes": (3, 3), "space.max_depth": 2, "evolution.final_seeds": 0,
        "final.max_epochs": 3}


def run(path: Path, **overrides) -> dict:
    cfg = load_config(overrides={**TINY, **overrides})
    assert session.start(cfg, path, out=io.StringIO()) == 0
    return RunDir(path).load_state(warn=lambda m: None).to_dict()


def search_keys(path: Path) -> list[str]:
    with sqlite3.connect(path / "evaluations.db") as db:
        return [k for (k,) in db.execute("SELECT genome_key FROM evaluations WHERE kind='search'")]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random", "aging"])
def test_strategy_resumes_identical_to_an_uninterrupted_run(tmp_path, strategy):
    n = 2 if strategy == "random" else 3
    given = {"evolution.strategy": strategy, "evolution.population": n}
    straight = run(tmp_path / "straight", **given, **{"evolution.generations": 2})
    run(tmp_path / "split", **given, **{"evolution.generations": 1})
    assert session.resume(tmp_path / "split", {"evolution.generations": 2}, out=io.StringIO()) == 0
    split = RunDir(tmp_path / "split").load_state(warn=lambda m: None).to_dict()
    for key in ("population", "fitness", "hall_of_fame", "rng_state", "trained", "reused"):
        assert straight[key] == split[key], key
    keys = search_keys(tmp_path / "split")
    assert len(keys) == len(set(keys)) == split["trained"]
    per_generation = n if strategy == "random" else aging_batch(n)
    assert split["reused"] == 0 and split["trained"] == n + 2 * per_generation  # every slot new


@pytest.mark.slow
def test_budget_stops_after_exactly_n_trained_networks_final_seeds_included(tmp_path):
    # 3 + 2 + 2 would be the search; 2 candidates x 2 seeds are held back for the final pick
    state = run(tmp_path / "ga", **{"evolution.generations": 50, "evolution.max_trainings": 9,
                                    "evolution.competition": False, "evolution.final_seeds": 2})
    assert state["trained"] == 9 and state["finished"]
    keys = search_keys(tmp_path / "ga")
    assert len(keys) == len(set(keys)) == 5
    assert state["generation"] == 1
    final = state["final"]
    assert len(final) == 2 and all(len(c["val_errors"]) == 3 for c in final)
    assert final[0]["mean_fitness"] <= final[1]["mean_fitness"]
    assert state["hall_of_fame"][0]["key"] == final[0]["key"]  # picked on the mean over seeds
    summary = json.loads((tmp_path / "ga" / "best" / "summary.json").read_text())
    scores = summary["test_scores"]  # the winner trained with each of its seeds, scored on test
    assert len(scores) == 3 and scores[0] == summary["test_score"]
    assert summary["test_score_mean"] == pytest.approx(sum(scores) / 3)
    assert not [p for p in (tmp_path / "ga").iterdir() if p.name.startswith(".")]  # scratch removed


@pytest.mark.slow
def test_a_budget_extended_on_resume_searches_as_the_larger_budget_from_the_start(tmp_path):
    # 3 + 2 + 2 + 1 search trainings with budget 12 (4 held for the final pick); budget 10
    # stops inside generation 2, its final pick trains, and the resume must redo
    # generation 2 as the straight run did it, not treat its own trainings as old networks.
    given = {"evolution.generations": 50, "evolution.competition": False, "evolution.final_seeds": 2}
    straight = run(tmp_path / "straight", **given, **{"evolution.max_trainings": 12})
    run(tmp_path / "split", **given, **{"evolution.max_trainings": 10})
    assert session.resume(tmp_path / "split", {"evolution.max_trainings": 12}, out=io.StringIO()) == 0
    split = RunDir(tmp_path / "split").load_state(warn=lambda m: None).to_dict()
    for key in ("generation", "population", "fitness", "keys", "hall_of_fame", "rng_state", "reused"):
        assert straight[key] == split[key], key
    assert [c["val_errors"] for c in straight["final"]] == [c["val_errors"] for c in split["final"]]
    assert sorted(search_keys(tmp_path / "straight")) == sorted(search_keys(tmp_path / "split"))
    assert straight["trained"] == 12 and split["trained"] - split["final_trained"] == 8


@pytest.mark.slow
def test_an_epoch_budget_is_spent_exactly_final_training_included(tmp_path):
    # Rungs 1, 2, 3: every training adds one epoch. 12 epochs, 3 held for the one final
    # training: the search trains exactly 9, the final training at most 3.
    from gnas.runs.store import EvaluationStore
    from gnas.search.fidelity import epochs_trained

    cfg = load_config(overrides={**TINY, "evolution.generations": 50, "evolution.competition": False,
                                 "fidelity.schedule": "sha", "fidelity.max_epochs": 3, "fidelity.eta": 2,
                                 "evolution.max_epochs_total": 12})
    out = io.StringIO()
    assert session.start(cfg, tmp_path / "run", out=out) == 0
    store = EvaluationStore(tmp_path / "run" / "evaluations.db", read_only=True)
    spent = epochs_trained(store.iter_results(), cfg.train.epochs)
    store.close()
    final = json.loads((tmp_path / "run" / "best" / "summary.json").read_text())["final_epochs"]
    assert spent["epochs"] == 9 and 1 <= sum(final) <= 3 and set(spent["rungs"]) >= {1, 2}
    assert f"= {9 + sum(final)} of a budget of 12" in out.getvalue()
