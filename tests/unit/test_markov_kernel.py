"""The chain of gnas' own operators: its matrix against brute-force counts and exact values."""
from __future__ import annotations

from math import comb

import numpy as np
import pytest

from gnas.markov import kernel
from gnas.search import operators

L, LENGTH = 6, 9  # 6 connection genes, 3 other genes


def _population(rng, n=8):
    return [tuple(int(b) for b in rng.integers(0, 2, LENGTH)) for _ in range(n)]


def _variation(mutation=0.7, crossover=0.6, indpb=0.2, elite=1):
    return kernel.search_variation(elite=elite, tournsize=2, rates=lambda bits: (mutation, crossover),
                                   indpb=indpb, repair=lambda bits: bits)


def test_matrix_rows_equal_a_brute_force_count_of_operators_vary():
    rng = np.random.default_rng(0)
    population, fitness = _population(rng), list(rng.random(8))
    P, measured = kernel.operator_matrix(population, fitness, _variation(), L, rounds=50, seed=3)
    brute = np.zeros((L + 1, L + 1))
    again = np.random.default_rng(3)
    for _ in range(50):
        for child in operators.vary(population, fitness, elite=1, tournsize=2,
                                    rates=lambda bits: (0.7, 0.6), indpb=0.2,
                                    repair=lambda bits: bits, rng=again):
            brute[sum(child.parent[:L]), sum(child.bits[:L])] += 1
    rows = brute.sum(axis=1) > 0
    assert np.array_equal(measured, rows)
    assert np.allclose(P[rows], brute[rows] / brute[rows].sum(axis=1, keepdims=True))
    assert np.allclose(P.sum(axis=1), 1.0)


def _flip_row(i, p):
    """Exact P[i, j] when every gene flips independently with probability p."""
    row = np.zeros(L + 1)
    for off in range(i + 1):           # ones switched off
        for on in range(L - i + 1):    # zeros switched on
            row[i - off + on] += (comb(i, off) * p ** off * (1 - p) ** (i - off)
                                  * comb(L - i, on) * p ** on * (1 - p) ** (L - i - on))
    return row


def test_mutation_only_rows_match_the_exact_bit_flip_distribution():
    variation = _variation(mutation=1.0, crossover=0.0, indpb=0.15, elite=0)
    population = [tuple([1] * i + [0] * (L - i)) + (0, 1, 0) for i in (1, 3, 5, 3)]
    P, measured = kernel.operator_matrix(population, [0.0] * 4, variation, L, rounds=2000, seed=0)
    for i in (1, 3, 5):
        assert measured[i]
        assert 0.5 * np.abs(P[i] - _flip_row(i, 0.15)).sum() < 0.03
    # states the population lacks come from synthetic parents of that state
    assert not measured[0] and 0.5 * np.abs(P[0] - _flip_row(0, 0.15)).sum() < 0.1


def test_elites_count_as_staying_put():
    variation = _variation(mutation=0.0, crossover=0.0, elite=3)
    population = [tuple([1] * i + [0] * (L - i)) + (0, 0, 0) for i in range(4)]
    P, _ = kernel.operator_matrix(population, [0.0, 1.0, 2.0, 3.0], variation, L, rounds=20)
    assert np.allclose(np.diag(P)[:4], 1.0)  # no crossover, no mutation: copies only


def test_mixing_time_of_a_two_state_chain_is_exact():
    a, b = 0.1, 0.3
    P = np.array([[1 - a, a], [b, 1 - b]])
    # TV distance from stationarity (0.75, 0.25) starting in state 0 is 0.25 * 0.6**g
    assert kernel.stationary(P) == pytest.approx([0.75, 0.25])
    assert kernel.mixing_generations(P, np.array([1.0, 0.0]), tol=0.25 * 0.6 ** 4 + 1e-12) == 4.0
    assert kernel.mixing_generations(P, np.array([0.75, 0.25])) == 0.0
    assert np.isnan(kernel.mixing_generations(P, np.array([1.0, 0.0]), tol=1e-9, limit=5))


def test_the_operators_chain_is_nearly_diagonal_at_the_search_rates():
    """At about one flipped gene per child the chain mostly stays put (not Wright-Fisher)."""
    rng = np.random.default_rng(1)
    population, fitness = _population(rng, 10), list(rng.random(10))
    P, measured = kernel.operator_matrix(population, fitness, _variation(0.3, 0.2, 1 / LENGTH), L,
                                         rounds=200)
    assert np.diag(P)[measured].mean() > 0.6


def test_the_novelty_rule_mutates_every_copy_into_a_new_network():
    rng = np.random.default_rng(2)
    population = _population(rng, 6)
    key = "".join

    def remutate(bits, rng):
        i = int(rng.integers(0, len(bits)))
        return bits[:i] + (1 - bits[i],) + bits[i + 1:]

    copies = _variation(mutation=0.0, crossover=0.0, elite=0)
    novel = kernel.with_novelty(copies, key_of=lambda b: key(map(str, b)), remutate=remutate,
                                evaluated={key(map(str, b)) for b in population}, tries=20)
    assert kernel.operator_shares(population, [0.0] * 6, copies, rounds=20) == {"copy": 1.0}
    assert kernel.operator_shares(population, [0.0] * 6, novel, rounds=20) == {"mutation": 1.0}
    children = novel(population, [0.0] * 6, np.random.default_rng(0))
    assert not {tuple(c.bits) for c in children} & set(population)
    assert len({tuple(c.bits) for c in children}) == 6
    # parents are networks already trained even when no one listed them
    unlisted = kernel.with_novelty(copies, key_of=lambda b: key(map(str, b)), remutate=remutate,
                                   evaluated=(), tries=20)
    assert kernel.operator_shares(population, [0.0] * 6, unlisted, rounds=5) == {"mutation": 1.0}
    # copies alone stay put; the rule moves a copy unless its flip hit one of the 3 other genes
    still, measured = kernel.operator_matrix(population, [0.0] * 6, copies, L, rounds=50)
    moved, _ = kernel.operator_matrix(population, [0.0] * 6, novel, L, rounds=50)
    assert np.allclose(np.diag(still)[measured], 1.0)
    assert 0.15 < np.diag(moved)[measured].mean() < 0.55
