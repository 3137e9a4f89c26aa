"""The shared definition of convergence: exact on known relaxations, and its chain forecast."""
from __future__ import annotations

import numpy as np
import pytest

from gnas.markov import settling


@pytest.mark.parametrize("tau", [3, 6])
def test_an_exponential_relaxation_settles_after_its_time_constant(tau):
    g = np.arange(31)
    assert settling.settling_generation(10.0 + 8.0 * np.exp(-g / tau)) == tau
    assert settling.settling_generation(10.0 - 8.0 * np.exp(-g / tau)) == tau  # from below too


def test_drift_within_the_noise_is_converged_at_once_and_short_runs_are_undefined():
    rng = np.random.default_rng(0)
    assert settling.settling_generation(12.0 + 0.3 * rng.standard_normal(31)) == 0
    assert settling.settling_generation([14.0, 13.0, 12.0, 12.0]) is None  # 3 generations after 0
    assert settling.settling_generation([14.0, 13.0, 12.0, 12.0, 12.0]) == 2  # 1 > 2 / e
    assert settling.settling_generation([14.0, 12.5, 12.0, 12.0, 12.0]) == 1


def test_simulated_populations_follow_the_chain_in_expectation():
    P = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.2, 0.8]])
    start = [0, 0, 0, 2]
    sims = settling.simulate_mean_states(P, start, 8, 4000, np.random.default_rng(1))
    pi = np.bincount(start, minlength=3) / len(start)
    expected = [pi @ np.linalg.matrix_power(P, g) @ np.arange(3) for g in range(9)]
    np.testing.assert_allclose(sims.mean(axis=0), expected, atol=0.02)


def test_the_forecast_of_a_two_state_chain_is_its_relaxation_time():
    # the mean relaxes as 0.8**g: it first falls within 1/e of the gap at g = 5
    P = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert settling.simulated_settling(P, [0] * 400, 30, runs=50) == 5
    assert settling.simulated_settling(P, [0] * 400, 3) is None
    # a slower chain settles later
    assert settling.simulated_settling(np.array([[0.97, 0.03], [0.03, 0.97]]), [0] * 400, 60, runs=50) > 10
