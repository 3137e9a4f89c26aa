"""The paired statistics of experiments/coe_vs_random.py on rows with known differences."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "experiments" / "coe_vs_random.py"


@pytest.fixture(scope="module")
def experiment():
    spec = importlib.util.spec_from_file_location("coe_vs_random", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(differences):
    rows = []
    for seed, d in enumerate(differences):
        for g, base in ((0, 2.0), (1, 1.0 + 0.1 * seed)):
            rows.append({"init": "random", "seed": seed, "generation": g, "best_val_loss": base})
            rows.append({"init": "coe", "seed": seed, "generation": g, "best_val_loss": base + d})
    return rows


def test_paired_difference_interval_and_tests(experiment):
    diffs = [-0.2, -0.1, -0.15, -0.25, -0.1]
    out = experiment.paired(_rows(diffs), "best_val_loss")
    assert out["seeds"] == [0, 1, 2, 3, 4]
    assert out["differences"] == pytest.approx(diffs)
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    half = 2.7764451 * sd / math.sqrt(5)  # t(0.975, 4 df)
    assert out["mean_difference"] == pytest.approx(mean)
    assert out["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-5)
    assert out["paired_t_p"] < 0.01 and out["verdict"] == "CoE lower"


def test_paired_difference_around_zero_is_unresolved(experiment):
    out = experiment.paired(_rows([0.1, -0.1, 0.05, -0.05, 0.0]), "best_val_loss")
    assert out["ci95"][0] < 0 < out["ci95"][1] and out["verdict"].startswith("no difference")


def test_one_seed_cannot_be_paired(experiment):
    assert experiment.paired(_rows([0.1]), "best_val_loss") is None


def test_convergence_verdict_compares_medians(experiment):
    runs = [{"wright_fisher": 30.0, "operators": 6.0, "observed": 5}, {"wright_fisher": 40.0, "operators": 8.0,
            "observed": 7}, {"wright_fisher": None, "operators": 7.0, "observed": None}]
    verdict = experiment.convergence_verdict(runs)
    assert verdict["observed_median"] == 6.0 and verdict["operators_median"] == 7.0
    assert verdict["operators_relative_error"] == pytest.approx(1 / 6)
    assert verdict["wright_fisher_relative_error"] == pytest.approx(29 / 6)
    assert verdict["operators_ratio"] == pytest.approx(7 / 6) and verdict["wright_fisher_ratio"] == 35 / 6
    assert verdict["observed_best_fitness_median"] is None and verdict["operators_mixing_ratio"] is None


def test_t_interval_of_the_mean_over_seeds(experiment):
    from scipy import stats

    lo, hi = experiment.t_interval([1.0, 2.0, 3.0, float("nan")])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2.0 - half, 2.0 + half))
    assert experiment.t_interval([1.0]) is None
