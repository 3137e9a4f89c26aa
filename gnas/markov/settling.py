"""When the population's connection genes have converged: one definition for a run and its forecasts.

The paper's Wright-Fisher chain calls a search converged when every connection
gene has fixed (absorption in state 0 or ``l``). gnas' novelty rule makes every
slot a new network, so genes never fix and that event never comes; a state chain
of gnas' operators has no absorbing state at all. What such a chain can forecast,
and what a run shows, is when the population's state distribution stops drifting.
:data:`STATE_CONVERGENCE_DEFINITION` fixes that event, and the same function
(:func:`settling_generation`) measures it on the run's recorded populations and on
populations simulated from a chain (:func:`simulated_settling`), with the run's
population size and horizon, so the observed and the predicted figures differ only
by the model, not by their definition or their noise.

The best-fitness convergence of the paper's Table II
(:data:`gnas.markov.chain.CONVERGENCE_DEFINITION`) is another event: no chain on
states carries fitness, so none forecasts it; reports show it beside these.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from gnas.markov import chain as markov

MIN_GENERATIONS = 4
"""Fewest generations after generation 0 for which a plateau (the last half) is defined."""

SIMULATIONS = 400
"""Populations simulated from a chain for one forecast (the median is reported)."""

STATE_CONVERGENCE_DEFINITION = (
    "Generations to convergence of the connection genes: with m[g] the mean state "
    "(ones among the l connection genes) of generation g's population, g = 0..G, the "
    "plateau m* is the mean of m over the last half of the run (g >= G // 2) and s the "
    "standard deviation of m there; the search converged at the first generation g "
    "with |m[g] - m*| <= max(|m[0] - m*| / e, s), i.e. once the drift from the initial "
    "population has shrunk by a factor e or to the generation-to-generation noise. "
    f"None for runs of fewer than {MIN_GENERATIONS} generations after generation 0. "
    "A chain's forecast is the median of the same quantity over "
    f"{SIMULATIONS} populations of the run's size simulated from the chain over the "
    "run's horizon, starting from the run's generation 0 (each child takes the state "
    "of a parent drawn uniformly from the population, then moves by the chain; with "
    "selection between states, the parent is the winner of the run's tournament on a "
    "fitness per state and the run's elites are kept, see gnas.markov.selection)."
)
"""The definition reports cite, for the observed and the predicted figures alike."""


def mean_states(populations: Sequence[np.ndarray]) -> np.ndarray:
    """Mean state per generation from ``(n, l)`` connection-gene arrays (one per generation)."""
    return np.asarray([float(np.asarray(p).sum(axis=1).mean()) for p in populations])


def settling_generation(trajectory: Sequence[float]) -> int | None:
    """The generation of :data:`STATE_CONVERGENCE_DEFINITION` for a mean-state trajectory m[0..G].

    The plateau is taken from the run itself, not from a model, so that the same
    function can judge a recorded run and a simulated one alike.
    """
    m = np.asarray(trajectory, dtype=float).ravel()
    if m.size - 1 < MIN_GENERATIONS or not np.isfinite(m).all():
        return None
    window = m[(m.size - 1) // 2:]
    plateau, noise = float(window.mean()), float(window.std())
    band = max(abs(m[0] - plateau) / math.e, noise)
    return int(np.flatnonzero(np.abs(m - plateau) <= band + 1e-12)[0])


def simulate_mean_states(P: np.ndarray, start_states: Sequence[int], generations: int,
                         runs: int, rng: np.random.Generator) -> np.ndarray:
    """``(runs, generations + 1)`` mean-state trajectories of populations moved by ``P``.

    Each generation every one of the ``n = len(start_states)`` children draws its
    parent uniformly from the current population (the chain carries no selection
    between states; its rows already hold the operators' moves from a parent of a
    state) and its state from that parent's row.
    """
    cum = markov.cumulative_rows(P)
    states = np.tile(np.asarray(start_states, dtype=np.int64), (runs, 1))
    n = states.shape[1]
    out = np.empty((runs, generations + 1))
    out[:, 0] = states.mean(axis=1)
    for g in range(1, generations + 1):
        parents = np.take_along_axis(states, rng.integers(0, n, states.shape), axis=1)
        states = markov.move(cum, parents, rng)
        out[:, g] = states.mean(axis=1)
    return out


def simulated_settling(P: np.ndarray, start_states: Sequence[int], generations: int, *,
                       runs: int = SIMULATIONS, seed: int = 0) -> float | None:
    """A chain's forecast of :func:`settling_generation`: its median over simulated runs.

    None when the horizon is too short for the definition, like the observed figure.
    """
    if generations < MIN_GENERATIONS or len(start_states) == 0:
        return None
    rng = np.random.default_rng(seed)
    values = [settling_generation(t) for t in simulate_mean_states(P, start_states, generations, runs, rng)]
    return float(np.median([v for v in values if v is not None]))
