"""Selection between states in the operators' forecast.

A row of the operators' matrix (:func:`gnas.markov.kernel.operator_matrix`) holds
where a child goes *given* its lineage parent's state; row-normalising the
counts removes how often that parent was chosen. Simulated with parents drawn
uniformly (:func:`gnas.markov.settling.simulate_mean_states`) the chain cannot
see that fitter states get more offspring, and it forecasts a slower drift than
a run shows. This module puts the run's selection back: every simulated
individual carries a fitness, the ``elite`` best survive unchanged, every other
slot is the child of the winner of a tournament of ``tournsize`` (the run's own
settings, :func:`gnas.search.operators.vary`) and moves by the winner's row of
the variation kernel (the matrix without the elites' moves), then gets a
fitness of its new state.

A state's fitness is drawn from the run's evaluations of networks in that
state (:class:`StateFitness`); a state the run never evaluated draws from all
the evaluations, the population's fitness distribution. Each child is a new
network (the novelty rule), so its fitness is a fresh draw, not its parent's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gnas.markov import settling


@dataclass(frozen=True)
class StateFitness:
    """Fitness samples (minimised ``F``) per state ``0..l``, padded to one array.

    ``samples[i, :counts[i]]`` are the values state ``i`` draws from; ``measured[i]``
    is False where the run had none and the pooled values stand in.
    """

    samples: np.ndarray
    counts: np.ndarray
    measured: np.ndarray

    @classmethod
    def from_evaluations(cls, states: Sequence[int], fitness: Sequence[float], l: int) -> "StateFitness":
        """Group the evaluations' fitness by state; non-finite fitness counts as the worst (+inf)."""
        s = np.asarray(states, dtype=np.int64).ravel()
        f = np.asarray(fitness, dtype=float).ravel()
        if s.size == 0 or s.shape != f.shape:
            raise ValueError(f"need one fitness per state and at least one, got {s.size} states, {f.size} values")
        if s.min() < 0 or s.max() > l:
            raise ValueError(f"states must lie in 0..{l}, got {s.min()}..{s.max()}")
        f = np.where(np.isfinite(f), f, np.inf)
        groups = [f[s == i] for i in range(l + 1)]
        measured = np.asarray([g.size > 0 for g in groups])
        groups = [g if g.size else f for g in groups]
        width = max(g.size for g in groups)
        samples = np.full((l + 1, width), np.inf)
        for i, g in enumerate(groups):
            samples[i, :g.size] = g
        return cls(samples, np.asarray([g.size for g in groups]), measured)

    def draw(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One fitness per entry of ``states``, each drawn uniformly from its state's samples."""
        states = np.asarray(states, dtype=np.int64)
        pick = (rng.random(states.shape) * self.counts[states]).astype(np.int64)
        return self.samples[states, pick]


def simulate_mean_states(P: np.ndarray, start_states: Sequence[int], start_fitness: Sequence[float],
                         fitness: StateFitness, generations: int, runs: int,
                         rng: np.random.Generator, *, elite: int, tournsize: int) -> np.ndarray:
    """``(runs, generations + 1)`` mean-state trajectories of populations under selection.

    Generation 0 is the run's: its states and measured fitness. Each generation
    keeps the ``elite`` fittest (state and fitness), and fills every other slot
    with a child of a tournament winner (best of ``tournsize`` drawn uniformly
    with replacement) whose state moves by ``P`` (the variation kernel without
    the elites' moves) and whose fitness is drawn for its new state.
    """
    P = np.asarray(P, dtype=float)
    cum = np.cumsum(P, axis=1)
    cum[:, -1] = 1.0
    states = np.tile(np.asarray(start_states, dtype=np.int64), (runs, 1))
    fit = np.tile(np.where(np.isfinite(start_fitness), np.asarray(start_fitness, dtype=float), np.inf),
                  (runs, 1))
    n = states.shape[1]
    elite = min(max(int(elite), 0), n)
    m, t = n - elite, max(int(tournsize), 1)
    out = np.empty((runs, generations + 1))
    out[:, 0] = states.mean(axis=1)
    for g in range(1, generations + 1):
        best = np.argsort(fit, axis=1, kind="stable")[:, :elite]
        aspirants = rng.integers(0, n, (runs, m, t))
        aspirant_fit = np.take_along_axis(fit, aspirants.reshape(runs, m * t), axis=1).reshape(runs, m, t)
        winners = np.take_along_axis(aspirants, aspirant_fit.argmin(axis=2)[..., None], axis=2)[..., 0]
        parents = np.take_along_axis(states, winners, axis=1)
        u = rng.random(parents.shape)
        children = (cum[parents] < u[..., None]).sum(axis=-1).clip(max=P.shape[0] - 1)
        states = np.concatenate([np.take_along_axis(states, best, axis=1), children], axis=1)
        fit = np.concatenate([np.take_along_axis(fit, best, axis=1), fitness.draw(children, rng)], axis=1)
        out[:, g] = states.mean(axis=1)
    return out


def simulated_settling(P: np.ndarray, start_states: Sequence[int], start_fitness: Sequence[float],
                       fitness: StateFitness, generations: int, *, elite: int, tournsize: int,
                       runs: int = settling.SIMULATIONS, seed: int = 0) -> float | None:
    """The forecast of :func:`gnas.markov.settling.settling_generation` with selection: its median.

    None when the horizon is too short for the definition, like the observed figure.
    """
    if generations < settling.MIN_GENERATIONS or len(start_states) == 0:
        return None
    rng = np.random.default_rng(seed)
    trajectories = simulate_mean_states(P, start_states, start_fitness, fitness, generations, runs, rng,
                                        elite=elite, tournsize=tournsize)
    values = [settling.settling_generation(t) for t in trajectories]
    return float(np.median([v for v in values if v is not None]))
