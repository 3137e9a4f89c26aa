"""Resume equivalence with real training: 2 generations resumed to 4 == 4 straight.

Both runs train generations in groups (``train.group_size = 4``); resuming one
killed mid-generation one at a time is covered by test_kill_resume.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from helpers import TINY, gnas, state  # noqa: E402

GROUPS = ["--set", "train.group_size=4"]


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    gnas("evolve", "--generations", "4", "--seed", "3", "--run-dir", straight, *TINY, *GROUPS)
    gnas("evolve", "--generations", "2", "--seed", "3", "--run-dir", split, *TINY, *GROUPS)
    assert state(split)["generation"] == 2
    with sqlite3.connect(straight / "evaluations.db") as db:
        groups = [json.loads(m).get("group", 1) for (m,) in db.execute("SELECT metrics FROM evaluations")]
    assert max(groups) > 1, "no generation was trained as a group"
    with sqlite3.connect(split / "evaluations.db") as db:
        before = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    proc = gnas("resume", split, "--generations", "4")
    assert "test score:" in proc.stdout
    a, b = state(straight), state(split)
    assert b["generation"] == 4
    assert a["population"] == b["population"]
    assert a["fitness"] == b["fitness"]
    assert a["hall_of_fame"] == b["hall_of_fame"]
    assert a["rng_state"] == b["rng_state"]
    with sqlite3.connect(split / "evaluations.db") as db:
        keys = [k for (k,) in db.execute("SELECT genome_key FROM evaluations WHERE kind='search'")]
        after = len(keys)
    assert after >= before and len(keys) == len(set(keys)), "resume retrained a finished network"


@pytest.mark.slow
def test_a_resumed_successive_halving_run_promotes_as_an_uninterrupted_one(tmp_path):
    """Rungs of 1, 2 and 3 epochs: promotions (of earlier generations too) are the same after a resume."""
    sha = ["--fidelity", "sha", "--set", "fidelity.max_epochs=3", "--set", "fidelity.eta=2",
           "--set", "final.max_epochs=0"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    gnas("evolve", "--generations", "3", "--seed", "5", "--run-dir", straight, *TINY, *GROUPS, *sha)
    gnas("evolve", "--generations", "1", "--seed", "5", "--run-dir", split, *TINY, *GROUPS, *sha)
    gnas("resume", split, "--generations", "3")

    def search_rows(run):
        with sqlite3.connect(run / "evaluations.db") as db:
            return [(k, g, e, json.loads(m)["rung"]) for k, g, e, m in db.execute(
                "SELECT genome_key, generation, val_error, metrics FROM evaluations "
                "WHERE kind = 'search' ORDER BY id")]

    rows = search_rows(straight)
    assert {rung for *_, rung in rows} == {0, 1, 2}, "nothing reached the last rung"
    assert search_rows(split) == rows
    a, b = state(straight), state(split)
    assert (a["population"], a["fitness"], a["hall_of_fame"]) == (b["population"], b["fitness"],
                                                                  b["hall_of_fame"])
    kept = [p.name for p in (split / "fidelity").iterdir()]  # states of the last rung are not kept
    assert kept and not any(name.endswith("-e3.npz") for name in kept)
