"""The Markov chain of the operators gnas runs, beside the paper's Wright-Fisher chain.

Wright-Fisher (:func:`gnas.markov.chain.theoretical_matrix`, the paper's eq. 4-6)
resamples all ``l`` connection genes binomially every generation; gnas' operators
copy parents chosen by tournament, cross them at their own crossover rate and
flip about one gene per mutated child. Its chain is therefore nearly diagonal and
mixes far more slowly, so Wright-Fisher's forecast of the generations to
convergence describes another algorithm.

This module builds the transition matrix of state ``i`` -> state ``j`` (ones among
the connection genes, as in :mod:`gnas.markov.chain`) by running the real
variation: a :data:`Variation` is called on a measured population and its
measured fitness (so selection is the measured one, tournament and elitism
included) many times, and every offspring's move from its lineage parent is
counted. The variation is pluggable: :func:`search_variation` wires
:func:`gnas.search.operators.vary` exactly as the search loop does, so the chain
follows any change to the operators, and :func:`with_novelty` adds the novelty
rule: a child whose network is already in the new population or already
evaluated is mutated again, as :func:`gnas.search.novelty.make_novel` does in the
loop. The evaluated networks are those known when the forecast is made (the
measured population and what the run trained up to it); later generations' are
not known yet, so the re-mutations they will cause are not in the chain (the
run's share of mutated moves beside the forecast's, :func:`operator_shares`,
shows how much that leaves out). States that the population does not hold
have no measured selection; their rows come from the same variation applied to
synthetic parents of that state alone (variation without selection), and are
marked.

Two forecasts: :func:`gnas.markov.settling.simulated_settling` (the one compared
with the observed convergence, same definition) and the mixing time
(:func:`predicted_convergence`): starting from the population's state
distribution, the generations until the distribution is within
:data:`MIXING_TOL` (total variation) of the chain's stationary distribution.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Container, Sequence

import numpy as np

from gnas.genome.space import Bits
from gnas.records import Operator
from gnas.search.novelty import KeyOf, Mutate, make_novel
from gnas.search.operators import Crossover, Offspring, vary

Variation = Callable[[Sequence[Bits], Sequence[float], np.random.Generator], Sequence[Offspring]]
"""One generation of variation: (population, fitness, rng) -> offspring with lineage parents."""

ROUNDS = 200          # generations of variation simulated per measured population
SYNTHETIC = 8         # synthetic parents per state absent from the population
MIXING_TOL = 0.25     # total-variation distance that counts as mixed
MAX_GENERATIONS = 10_000


def search_variation(*, elite: int, tournsize: int, rates: Callable[[Bits], tuple[float, float]],
                     indpb: float, repair: Callable[[Bits], Bits],
                     crossover: Crossover | None = None,
                     grow: Callable[[Bits, np.random.Generator], Bits] | None = None,
                     mutate: Callable[[Bits, float, np.random.Generator], Bits] | None = None,
                     ) -> Variation:
    """:func:`gnas.search.operators.vary` with the search loop's arguments bound."""
    def variation(population: Sequence[Bits], fitness: Sequence[float],
                  rng: np.random.Generator) -> Sequence[Offspring]:
        return vary(population, fitness, elite=elite, tournsize=tournsize, rates=rates, indpb=indpb,
                    repair=repair, rng=rng, crossover=crossover, grow=grow, mutate=mutate)
    return variation


def with_novelty(variation: Variation, *, key_of: KeyOf, remutate: Mutate,
                 evaluated: Container[str], tries: int) -> Variation:
    """``variation`` followed by the loop's novelty rule against the ``evaluated`` networks.

    The parents' own networks count as evaluated too, as they always are in a run:
    a copy of a parent, synthetic parents of :func:`operator_matrix` included, is
    mutated again.
    """
    def novel(population: Sequence[Bits], fitness: Sequence[float],
              rng: np.random.Generator) -> Sequence[Offspring]:
        return make_novel(variation(population, fitness, rng), rng, mutate=remutate, key_of=key_of,
                          evaluated=evaluated, tries=tries,
                          taken=[key_of(b) for b in population]).offspring
    return novel


def operator_shares(population: Sequence[Bits], fitness: Sequence[float], variation: Variation,
                    *, rounds: int = ROUNDS, seed: int = 0) -> dict[str, float]:
    """Share of each lineage label among the offspring of ``rounds`` simulated generations.

    Set beside the run's own labels (its Markov records) it measures how often
    the run mutated children that the forecast's variation did not.
    """
    rng = np.random.default_rng(seed)
    labels = Counter(str(o.operator) for _ in range(rounds) for o in variation(population, fitness, rng))
    total = sum(labels.values())
    return {k: v / total for k, v in sorted(labels.items())} if total else {}


def state(bits: Sequence[int], l: int) -> int:
    """Ones among the first ``l`` (connection) genes."""
    return int(sum(int(b) for b in bits[:l]))


def _moves(population: Sequence[Bits], fitness: Sequence[float], variation: Variation, l: int,
           rounds: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Counts of every offspring's move over ``rounds`` generations, and of the elites' alone."""
    every = np.zeros((l + 1, l + 1), dtype=np.int64)
    elite = np.zeros_like(every)
    for _ in range(rounds):
        for child in variation(population, fitness, rng):
            move = state(child.parent, l), state(child.bits, l)
            every[move] += 1
            if child.operator == Operator.ELITE:
                elite[move] += 1
    return every, elite


def count_moves(population: Sequence[Bits], fitness: Sequence[float], variation: Variation, l: int,
                rounds: int, rng: np.random.Generator, *, elites: bool = True) -> np.ndarray:
    """``(l+1) x (l+1)`` counts of lineage-parent state -> offspring state over ``rounds`` generations.

    Every offspring counts, elites too (the next population is all of them),
    unless ``elites`` is False: a forecast that keeps the elites itself
    (:mod:`gnas.markov.selection`) needs the moves of the other children only.
    """
    every, elite = _moves(population, fitness, variation, l, rounds, rng)
    return every if elites else every - elite


def synthetic_parent(template: Bits, l: int, i: int, rng: np.random.Generator) -> Bits:
    """``template`` with its connection genes replaced by ``i`` ones at random places."""
    genes = np.zeros(l, dtype=int)
    genes[rng.choice(l, i, replace=False)] = 1
    return tuple(int(b) for b in genes) + tuple(template[l:])


def operator_matrices(population: Sequence[Bits], fitness: Sequence[float], variation: Variation,
                      l: int, *, rounds: int = ROUNDS, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(P, measured, P_without_elites, measured_without_elites)`` from one pass of simulated variation.

    Rows of states the population holds are the moves of ``rounds`` simulated
    generations on the measured population and fitness. The others come from a
    population of :data:`SYNTHETIC` parents of that state only (equal fitness:
    variation without selection), built from the population's own non-connection
    genes; a row that still saw no move stays on its state. The second matrix
    leaves the elites' moves out (see :func:`count_moves`); a state that only an
    elite held is filled like an absent one.
    """
    rng = np.random.default_rng(seed)
    every, elite = _moves(population, fitness, variation, l, rounds, rng)
    rest = every - elite
    measured, measured_rest = every.sum(axis=1) > 0, rest.sum(axis=1) > 0
    per_state = max(1, rounds // 10)
    for i in np.flatnonzero(~measured_rest):
        parents = [synthetic_parent(population[k % len(population)], l, int(i), rng)
                   for k in range(max(SYNTHETIC, len(population)))]
        more, more_elite = _moves(parents, [0.0] * len(parents), variation, l, per_state, rng)
        if not measured[i]:
            every[i] += more[i]
        rest[i] += more[i] - more_elite[i]
    return _normalised(every), measured, _normalised(rest), measured_rest


def _normalised(counts: np.ndarray) -> np.ndarray:
    """Row-normalised counts; a row without a move stays on its state."""
    P = np.asarray(counts, dtype=float).copy()
    empty = P.sum(axis=1) == 0
    P[empty, np.flatnonzero(empty)] = 1.0
    return P / P.sum(axis=1, keepdims=True)


def operator_matrix(population: Sequence[Bits], fitness: Sequence[float], variation: Variation,
                    l: int, *, rounds: int = ROUNDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The operators' transition matrix (every offspring, elites included) and its measured rows.

    The first half of :func:`operator_matrices`, for callers that do not need
    the matrix without the elites' moves.
    """
    P, measured, _, _ = operator_matrices(population, fitness, variation, l, rounds=rounds, seed=seed)
    return P, measured


def stationary(P: np.ndarray) -> np.ndarray:
    """A stationary distribution of ``P`` (left eigenvector of eigenvalue 1, normalised)."""
    vals, vecs = np.linalg.eig(np.asarray(P, dtype=float).T)
    v = np.abs(np.real(vecs[:, int(np.argmin(np.abs(vals - 1.0)))]))
    return v / v.sum()


def mixing_generations(P: np.ndarray, start: np.ndarray, tol: float = MIXING_TOL,
                       limit: int = MAX_GENERATIONS) -> float:
    """Generations until ``start @ P^g`` is within ``tol`` (total variation) of stationarity.

    NaN when that takes more than ``limit`` generations.
    """
    pi, target = np.asarray(start, dtype=float), stationary(P)
    for g in range(limit + 1):
        if 0.5 * np.abs(pi - target).sum() <= tol:
            return float(g)
        pi = pi @ P
    return math.nan


def state_distribution(population: Sequence[Bits], l: int) -> np.ndarray:
    """Share of the population in each state 0..l."""
    out = np.zeros(l + 1)
    for bits in population:
        out[state(bits, l)] += 1
    return out / max(len(population), 1)


def predicted_convergence(population: Sequence[Bits], fitness: Sequence[float], variation: Variation,
                          l: int, *, rounds: int = ROUNDS, seed: int = 0) -> float:
    """The operators chain's generations to convergence from this population (mixing time)."""
    P, _ = operator_matrix(population, fitness, variation, l, rounds=rounds, seed=seed)
    return mixing_generations(P, state_distribution(population, l))
