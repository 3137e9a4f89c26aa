"""Langton's lambda, the edge-of-chaos bits, diversity measures and initial populations."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from gnas.chaos import population as chaos
from gnas.search import statistics
from gnas.config import load_config
from gnas.datasets import load_dataset
from gnas.genome.space import bits_to_str
from gnas.errors import ConfigError, GnasError
from gnas.genome.factory import make_space


# ---------------------------------------------------------------- Langton's lambda
@pytest.mark.parametrize("n, d, q, expected", [(2, 3, 0, 1.0), (2, 3, 8, 0.0), (2, 3, 2, 0.75),
                                               (10, 2, 14, 0.86), (3, 0, 1, 0.0)])
def test_langton_lambda_follows_eq_1_2(n, d, q, expected):
    assert chaos.langton_lambda(n, d, q) == pytest.approx(expected)


@pytest.mark.parametrize("n, d, q", [(2, 3, 9), (2, 3, -1), (0, 3, 0), (2, -1, 0)])
def test_langton_lambda_refuses_bad_arguments(n, d, q):
    with pytest.raises(ConfigError) as info:
        chaos.langton_lambda(n, d, q)
    assert "\n" not in str(info.value)


def test_population_lambda_is_fraction_of_active_genes():
    assert statistics.population_lambda([[1, 0, 0, 1], [1, 1, 1, 1]]) == pytest.approx(0.75)
    assert statistics.population_lambda(np.zeros((0, 4))) == 0.0


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_check_lambda_refuses_values_outside_unit_interval(value):
    with pytest.raises(GnasError):
        chaos.check_lambda(value)


# ---------------------------------------------------------------- diversity measures
def test_mean_hamming_and_entropy_match_brute_force():
    bits = np.random.default_rng(3).integers(0, 2, (7, 13))
    pairs = list(itertools.combinations(range(7), 2))
    brute = np.mean([np.sum(bits[i] != bits[j]) for i, j in pairs])
    assert statistics.mean_hamming(bits) == pytest.approx(brute)
    p = bits.mean(axis=0)
    h = [0.0 if v in (0, 1) else -(v * np.log2(v) + (1 - v) * np.log2(1 - v)) for v in p]
    assert statistics.per_locus_entropy(bits) == pytest.approx(np.mean(h))
    assert statistics.mean_hamming(bits[:1]) == 0.0


# ---------------------------------------------------------------- the logistic map
def test_logistic_orbit_stays_in_unit_interval_and_is_not_periodic_short():
    x = chaos.logistic_sequence(512, x0=0.3)
    assert np.all((x > 0) & (x < 1))
    for period in (1, 2, 4, 8, 16):
        assert not np.allclose(x[period:], x[:-period], atol=1e-9)


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.786, 0.881])
def test_coe_bits_have_fraction_lambda_of_ones(lam):
    bits = chaos.coe_bits(10, 46, lam, np.random.default_rng(0))
    assert bits.shape == (10, 46)
    assert set(np.unique(bits)) <= {0, 1}
    assert bits.mean() == pytest.approx(lam, abs=0.03)


def test_coe_bits_are_deterministic_per_seed():
    a = chaos.coe_bits(8, 46, 0.881, np.random.default_rng(5))
    b = chaos.coe_bits(8, 46, 0.881, np.random.default_rng(5))
    c = chaos.coe_bits(8, 46, 0.881, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_coe_bits_at_the_ends_are_constant(lam):
    bits = chaos.coe_bits(3, 5, lam, np.random.default_rng(0))
    assert np.all(bits == int(lam))


def test_coe_bits_refuse_lambda_outside_unit_interval():
    with pytest.raises(ConfigError):
        chaos.coe_bits(3, 5, 1.2, np.random.default_rng(0))


@pytest.mark.parametrize("lam", [0.2, 0.49, 0.786, 0.881])
def test_coe_individuals_differ_and_are_as_diverse_as_bernoulli(lam):
    """One orbit cut into chromosomes gave (near) copies; every individual now has its own."""
    n, length = 8, 48  # a length that is a multiple of every short period
    hamming, entropy, distinct = [], [], []
    for seed in range(20):
        bits = chaos.coe_bits(n, length, lam, np.random.default_rng(seed))
        hamming.append(statistics.mean_hamming(bits) / length)
        entropy.append(statistics.per_locus_entropy(bits))
        distinct.append(len({row.tobytes() for row in bits}))
    assert np.mean(distinct) >= n - 0.5
    assert np.mean(hamming) == pytest.approx(2 * lam * (1 - lam), rel=0.15)
    bernoulli = [statistics.per_locus_entropy(np.random.default_rng(s).random((n, length)) < lam)
                 for s in range(20)]
    assert np.mean(entropy) >= 0.9 * np.mean(bernoulli)


# ---------------------------------------------------------------- initial populations
def _initial_population(tmp_path, init: str, seed: int) -> list[str]:
    cfg = load_config(None, {"evolution.init": init, "evolution.seed": seed,
                             "evolution.growth": False, "data.max_train_samples": 100})
    dataset = load_dataset("digits", max_train_samples=100, val_fraction=0.2)
    space = make_space(cfg, dataset)
    drawn = chaos.initial_population(cfg, space, np.random.default_rng(seed), lambda: (0.881, "config"))
    return [bits_to_str(b) for b in drawn.genomes]


def _connection_genes() -> int:
    cfg = load_config(None, {"data.max_train_samples": 100})
    return make_space(cfg, load_dataset("digits", max_train_samples=100, val_fraction=0.2)).l


@pytest.mark.parametrize("init", ["coe", "random"])
def test_initial_population_is_deterministic_per_seed(tmp_path, init):
    first = _initial_population(tmp_path, init, 1)
    assert first == _initial_population(tmp_path, init, 1)
    assert first != _initial_population(tmp_path, init, 2)


def test_coe_population_sits_at_lambda_c_and_random_at_one_half(tmp_path):
    coe = np.array([[int(c) for c in g] for g in _initial_population(tmp_path, "coe", 0)])
    rnd = np.array([[int(c) for c in g] for g in _initial_population(tmp_path, "random", 0)])
    l = _connection_genes()
    # connection genes at lambda_c = 0.881 (repair may switch a stage off, never on);
    # width and hyper-parameter genes from the same orbits at 1/2
    assert coe[:, :l].mean() > 0.75
    assert 0.3 < coe[:, l:].mean() < 0.7
    assert 0.3 < rnd.mean() < 0.7
