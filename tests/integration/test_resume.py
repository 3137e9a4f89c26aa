"""Resume equivalence with real training: 2 generations resumed to 4 == 4 straight."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import TINY, gnas, state  # noqa: E402


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    gnas("evolve", "--generations", "4", "--seed", "3", "--run-dir", straight, *TINY)
    gnas("evolve", "--generations", "2", "--seed", "3", "--run-dir", split, *TINY)
    assert state(split)["generation"] == 2
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
