"""Paper eq. 3 and the worst fitness of failures."""
from __future__ import annotations

import pytest

from gnas.config import RunConfig, apply_overrides
from gnas.search.fitness import FitnessModel, fitness_value
from gnas.records import EvalResult
from gnas.genome.space import SearchSpace


def test_equation_three():
    assert fitness_value(0.1, 500, 1000, 0.5, alpha=0.2, mu=-0.1) == pytest.approx(0.1 + 0.1 - 0.05)


def test_failed_is_worse_than_any_success():
    cfg = apply_overrides(RunConfig(), {"evolution.alpha": 0.3, "evolution.mu": 0.2})
    space = SearchSpace(cfg.space, (8, 8, 1), 10, family="dense")
    model = FitnessModel(cfg, space)
    worst_ok = EvalResult(key="k", genome="0", status="ok", val_error=1.0, params=space.c_max,
                          pruned_fraction=1.0)
    bad = EvalResult(key="k", genome="0", status="failed")
    assert model.fitness(bad) > model.fitness(worst_ok)


def test_complexity_is_relative_to_largest_network():
    cfg = RunConfig()
    space = SearchSpace(cfg.space, (8, 8, 1), 10, family="dense")
    model = FitnessModel(cfg, space)
    r = EvalResult(key="k", genome="0", status="ok", val_error=0.0, params=space.c_max)
    assert model.fitness(r) == pytest.approx(cfg.evolution.alpha)
