"""Selection between states in the operators' forecast: against brute force, and its direction."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gnas.markov import kernel, selection, settling


def test_one_generation_matches_a_brute_force_enumeration_of_tournaments():
    # l = 2, three individuals in states 0, 1, 2; state 1 is the fittest, state 2 the worst.
    P = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    states, fit = [0, 1, 2], [0.5, 0.2, 0.9]
    model = selection.StateFitness.from_evaluations(states, fit, 2, prior=0.0)
    # Brute force: the elite (individual 1) stays; each of the two children is the
    # child of the best of two individuals drawn with replacement (9 equally likely pairs).
    child = np.zeros(3)
    for a, b in itertools.product(range(3), repeat=2):
        winner = min((a, b), key=lambda i: fit[i])
        child += P[states[winner]] / 9
    exact = np.zeros(7)  # distribution of the sum of the three states of generation 1
    for c1, c2 in itertools.product(range(3), repeat=2):
        exact[1 + c1 + c2] += child[c1] * child[c2]
    runs = 20_000
    sim = selection.simulate_mean_states(P, states, fit, model, 1, runs, np.random.default_rng(0),
                                         elite=1, tournsize=2)
    sums = np.rint(sim[:, 1] * 3).astype(int)
    observed = np.bincount(sums, minlength=7) / runs
    assert 0.5 * np.abs(observed - exact).sum() < 0.02
    assert sim[:, 0] == pytest.approx(1.0)


def test_a_fitter_state_gains_mass_under_selection_and_not_without():
    P = np.eye(4)  # variation never changes a state: only selection can move the mean
    states = [0] * 5 + [3] * 5
    model = selection.StateFitness.from_evaluations([0, 3], [1.0, 0.1], 3, prior=0.0)  # 3 is fitter
    rng = np.random.default_rng(1)
    fit = model.draw(np.asarray(states), rng)
    chosen = selection.simulate_mean_states(P, states, fit, model, 5, 2000, rng, elite=1, tournsize=2)
    blind = selection.simulate_mean_states(P, states, fit, model, 5, 2000, rng, elite=0, tournsize=1)
    assert chosen[:, 5].mean() > 2.8
    assert abs(blind[:, 5].mean() - 1.5) < 0.1  # drift only: the mean is a martingale
    # without selection the chain is the uniform-parent simulation the forecast used before
    uniform = settling.simulate_mean_states(P, states, 5, 2000, rng)
    assert abs(uniform[:, 5].mean() - blind[:, 5].mean()) < 0.1


def test_state_fitness_pools_for_unseen_states_and_ranks_failures_last():
    model = selection.StateFitness.from_evaluations([1, 1, 3], [0.2, 0.4, math.nan], 3, prior=0.0)
    assert model.measured.tolist() == [False, True, False, True]
    assert model.samples[3, 0] == math.inf
    draws = model.draw(np.array([1] * 400 + [0] * 600), np.random.default_rng(0))
    assert set(draws[:400]) == {0.2, 0.4}
    assert set(draws[400:]) == {0.2, 0.4, math.inf}  # the pooled distribution, failure included
    with pytest.raises(ValueError):
        selection.StateFitness.from_evaluations([4], [0.1], 3)


def test_states_are_told_apart_only_as_far_as_the_evaluations_show_a_difference():
    rng = np.random.default_rng(2)
    states = np.repeat([1, 2, 3, 4], 6)
    apart = selection.StateFitness.from_evaluations(states, states + rng.normal(0, 0.05, 24), 4)
    alike = selection.StateFitness.from_evaluations(states, rng.random(24), 4)
    assert apart.weight[1:].min() > 0.95 and apart.weight[0] == 0.0
    assert alike.weight.max() < 0.5
    # one evaluation per state shows no within-state spread: no evidence, no preference
    once = selection.StateFitness.from_evaluations([0, 1, 2], [0.5, 0.2, 0.9], 2)
    assert once.weight.tolist() == [0.0, 0.0, 0.0]
    # the draw's mean is the shrunk (empirical-Bayes) mean of the state
    draws = apart.draw(np.full(20_000, 1), rng)
    expected = apart.weight[1] * apart.samples[1, :6].mean() + (1 - apart.weight[1]) * apart.pooled.mean()
    assert draws.mean() == pytest.approx(expected, abs=0.03)


def test_the_selection_kernel_leaves_the_elites_moves_out():
    L = 4
    variation = kernel.search_variation(elite=2, tournsize=2, rates=lambda bits: (0.0, 0.0), indpb=0.1,
                                        repair=lambda bits: bits)
    rng = np.random.default_rng(0)
    population = [tuple(int(b) for b in rng.integers(0, 2, L)) for _ in range(6)]
    fitness = list(rng.random(6))
    every = kernel.count_moves(population, fitness, variation, L, 10, np.random.default_rng(1))
    moves = kernel.count_moves(population, fitness, variation, L, 10, np.random.default_rng(1), elites=False)
    assert every.sum() == 60 and moves.sum() == 40
    best = sorted(range(6), key=lambda i: fitness[i])[:2]
    elite_counts = np.zeros_like(every)
    for i in best:
        elite_counts[sum(population[i]), sum(population[i])] += 10
    assert np.array_equal(every - moves, elite_counts)
    # one pass gives both matrices, each its counts row-normalised
    P, measured, rest, measured_rest = kernel.operator_matrices(population, fitness, variation, L,
                                                                rounds=10, seed=1)
    for matrix, seen, counts in ((P, measured, every), (rest, measured_rest, moves)):
        rows = counts.sum(axis=1) > 0
        assert np.array_equal(seen, rows)
        assert np.allclose(matrix[rows], counts[rows] / counts[rows].sum(axis=1, keepdims=True))
        assert np.allclose(matrix.sum(axis=1), 1.0)
