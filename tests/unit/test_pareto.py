"""non_dominated against a brute-force reference, including ties, duplicates and NaN."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gnas.search import pareto
from gnas.records import StoredEvaluation
from gnas.search.pareto import front_of, non_dominated


def brute_force(points: np.ndarray) -> list[int]:
    """The definition, literally: no other row is <= everywhere and < somewhere."""
    out = []
    for i, p in enumerate(points):
        if np.isnan(p).any():
            continue
        dominated = any(not np.isnan(q).any() and np.all(q <= p) and np.any(q < p)
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            out.append(i)
    return out


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 30), st.integers(1, 4)),
              elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, np.inf, np.nan])))
def test_matches_brute_force_with_many_ties(points):
    assert non_dominated(points).tolist() == brute_force(points)


@pytest.mark.parametrize("n,m", [(1, 2), (50, 2), (300, 3), (1100, 2)])
def test_matches_brute_force_on_random_points(n, m):
    rng = np.random.default_rng(n)
    points = rng.normal(size=(n, m))
    assert non_dominated(points).tolist() == brute_force(points)


def test_duplicates_of_a_front_point_are_all_kept():
    points = np.array([[0.1, 100], [0.1, 100], [0.2, 50], [0.3, 100], [0.2, 50]])
    assert non_dominated(points).tolist() == [0, 1, 2, 4]


def test_single_objective_keeps_every_minimum():
    assert non_dominated(np.array([3.0, 1.0, 2.0, 1.0])).tolist() == [1, 3]


def test_empty_and_bad_shapes():
    assert non_dominated(np.empty((0, 2))).tolist() == []
    with pytest.raises(ValueError, match="shape"):
        non_dominated(np.zeros((2, 2, 2)))


def _row(key, err, params, status="ok", row_id=0):
    return StoredEvaluation.from_row(
        {"id": row_id, "genome_key": key, "val_error": err, "params": params, "flops": 2 * params,
         "status": status, "fitness": err, "generation": 0, "kind": "search", "genome": "0"})


def test_front_of_keeps_one_best_evaluation_per_network_and_skips_failures():
    rows = [_row("a", 0.5, 10), _row("a", 0.4, 10), _row("b", 0.3, 40), _row("c", 0.35, 50),
            _row("d", 0.0, 5, status="failed"), _row("e", 0.3, 40)]
    front = front_of(rows)
    assert [(e.key, e.result.val_error) for e in front] == [("a", 0.4), ("b", 0.3), ("e", 0.3)]
    assert [e.key for e in front_of(rows, "flops")] == ["a", "b", "e"]
    assert front_of([]) == []
