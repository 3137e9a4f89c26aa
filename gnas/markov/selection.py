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

A new network's fitness comes from the run's evaluations (:class:`StateFitness`):
with probability ``w_i = k_i / (k_i + k0)`` one of the ``k_i`` evaluations of
networks in its state ``i``, otherwise one of all the evaluations (the
population's distribution; a state the run never evaluated always draws from
there). The draw's mean is then the empirical-Bayes estimate of the state's
mean fitness under a one-way random-effects model, ``k0 = sigma^2 / tau^2``
(within-state over between-state variance, estimated from the evaluations by
the analysis of variance): a state seen once with a lucky network is not
taken for a fit state, and where the evaluations show no difference between
states (``tau^2 = 0``, or too few to tell) states are not told apart at all.
Without that shrinkage the state of the single best network of generation 0
would win every tournament and the forecast would converge in one generation.
Each child is a new network (the novelty rule), so its fitness is a fresh
draw, not its parent's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gnas.markov import chain as markov
from gnas.markov import settling


def shrinkage_prior(states: np.ndarray, fitness: np.ndarray) -> float:
    """``k0 = sigma^2 / tau^2`` of a one-way random-effects model of fitness by state.

    Moment estimates from the finite values (unbalanced analysis of variance).
    ``inf`` (no evidence that states differ) when fewer than two states or no
    replicate within a state are measured, or when ``tau^2`` comes out <= 0.
    """
    ok = np.isfinite(fitness)
    s, f = states[ok], fitness[ok]
    groups = [f[s == i] for i in np.unique(s)]
    n, k = f.size, len(groups)
    if k < 2 or n - k < 1:
        return math.inf
    within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / (n - k)
    grand = float(f.mean())
    between = sum(g.size * (float(g.mean()) - grand) ** 2 for g in groups) / (k - 1)
    size = (n - sum(g.size ** 2 for g in groups) / n) / (k - 1)
    tau2 = (between - within) / size
    if not tau2 > 0:
        return math.inf
    return within / tau2


@dataclass(frozen=True)
class StateFitness:
    """Fitness samples (minimised ``F``) per state ``0..l`` and the weight of a state's own samples.

    ``samples[i, :counts[i]]`` are state ``i``'s evaluations, ``pooled`` all of
    them; a draw for state ``i`` takes its own with probability ``weight[i]``.
    ``measured[i]`` is False where the run had no evaluation in state ``i``.
    """

    samples: np.ndarray
    counts: np.ndarray
    pooled: np.ndarray
    weight: np.ndarray
    measured: np.ndarray

    @classmethod
    def from_evaluations(cls, states: Sequence[int], fitness: Sequence[float], l: int,
                         prior: float | None = None) -> "StateFitness":
        """Group the evaluations' fitness by state; non-finite fitness counts as the worst (+inf).

        ``prior`` is ``k0``; None estimates it (:func:`shrinkage_prior`), 0 trusts
        every state's own evaluations fully.
        """
        s = np.asarray(states, dtype=np.int64).ravel()
        f = np.asarray(fitness, dtype=float).ravel()
        if s.size == 0 or s.shape != f.shape:
            raise ValueError(f"need one fitness per state and at least one, got {s.size} states, {f.size} values")
        if s.min() < 0 or s.max() > l:
            raise ValueError(f"states must lie in 0..{l}, got {s.min()}..{s.max()}")
        k0 = shrinkage_prior(s, f) if prior is None else float(prior)
        f = np.where(np.isfinite(f), f, np.inf)
        groups = [f[s == i] for i in range(l + 1)]
        counts = np.asarray([g.size for g in groups])
        samples = np.full((l + 1, max(1, counts.max())), np.inf)
        for i, g in enumerate(groups):
            samples[i, :g.size] = g
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(counts > 0, counts / (counts + k0), 0.0) if math.isfinite(k0) \
                else np.zeros(l + 1)
        return cls(samples, counts, f, np.nan_to_num(weight), counts > 0)

    def draw(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One fitness per entry of ``states``: its state's own evaluations or the pooled ones."""
        states = np.asarray(states, dtype=np.int64)
        own = rng.random(states.shape) < self.weight[states]
        pick = (rng.random(states.shape) * np.maximum(self.counts[states], 1)).astype(np.int64)
        pooled = self.pooled[(rng.random(states.shape) * self.pooled.size).astype(np.int64)]
        return np.where(own, self.samples[states, pick], pooled)


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
    cum = markov.cumulative_rows(P)
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
        children = markov.move(cum, parents, rng)
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
