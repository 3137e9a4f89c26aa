"""--objectives error,params runs NSGA-II and keeps a non-dominated front."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from helpers import TINY, gnas, report, state  # noqa: E402

from gnas.search.operators import crowded_ranks, sel_nsga2  # noqa: E402


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def test_sel_nsga2_keeps_the_first_front_first():
    points = [(0.1, 0.9), (0.2, 0.2), (0.9, 0.1), (0.5, 0.5), (0.3, 0.3), (1.0, 1.0)]
    chosen = sel_nsga2(points, 3)
    assert set(chosen) == {0, 1, 2}
    ranks = crowded_ranks(points)
    assert ranks[5] == max(ranks)


@pytest.mark.slow
def test_nsga2_run_keeps_a_brute_force_non_dominated_front(tmp_path):
    run = tmp_path / "run"
    gnas("evolve", "--objectives", "error,params", "--generations", "2", "--run-dir", run, *TINY)
    st = state(run)
    front = st["pareto_front"]
    assert front
    with sqlite3.connect(run / "evaluations.db") as db:
        rows = db.execute("SELECT genome_key, MIN(val_error), MAX(params) FROM evaluations "
                          "WHERE status='ok' AND kind != 'reseed' GROUP BY genome_key").fetchall()
    points = {k: (e, p) for k, e, p in rows}
    expected = {k for k, p in points.items()
                if not any(dominates(q, p) for j, q in points.items() if j != k)}
    front_points = {(f["val_error"], f["params"]) for f in front}
    assert front_points == {points[k] for k in expected}
    assert report(run)["pareto_front"]
