"""Variation operators: pure functions with an explicit random generator.

They keep DEAP's shape (``sel_*``, ``cx_*``, ``mut_*``) but take ``rng`` instead of
the global ``random`` module, so a search is reproducible from its saved generator
state, and they return new bit tuples instead of mutating in place.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from gnas.genome.space import Bits
from gnas.records import Operator

Crossover = Callable[[Bits, Bits, np.random.Generator], tuple[Bits, Bits]]


def sel_best(fitnesses: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` smallest fitnesses (elitism); ties keep population order."""
    return sorted(range(len(fitnesses)), key=lambda i: (fitnesses[i], i))[:k]


def sel_tournament(fitnesses: Sequence[float], k: int, tournsize: int,
                   rng: np.random.Generator) -> list[int]:
    """``k`` indices, each the best of ``tournsize`` drawn uniformly with replacement."""
    chosen = []
    for _ in range(k):
        aspirants = rng.integers(0, len(fitnesses), tournsize)
        chosen.append(int(min(aspirants, key=lambda i: (fitnesses[i], i))))
    return chosen


def cx_one_point(a: Bits, b: Bits, rng: np.random.Generator) -> tuple[Bits, Bits]:
    """Single-point crossover: cut at 1..len-1 and swap tails."""
    cut = int(rng.integers(1, len(a)))
    return a[:cut] + b[cut:], b[:cut] + a[cut:]


def cx_segments(a: Bits, b: Bits, segments: Sequence[Sequence[slice]],
                rng: np.random.Generator) -> tuple[Bits, Bits]:
    """Stage-wise crossover: swap whole stage segments, each with probability 1/2."""
    x, y = list(a), list(b)
    for slices in segments:
        if rng.random() < 0.5:
            for sl in slices:
                x[sl], y[sl] = y[sl], x[sl]
    return tuple(x), tuple(y)


def growth(stage_bits: slice, rate: float) -> Callable[[Bits, np.random.Generator], Bits] | None:
    """The growth mutation with its stage bits and rate bound; none when the rate is 0."""
    if rate <= 0:
        return None
    return functools.partial(mut_grow, stage_bits=stage_bits, rate=rate)


def mut_grow(bits: Bits, rng: np.random.Generator, *, stage_bits: slice, rate: float) -> Bits:
    """Growth mutation: with probability ``rate``, switch on the first inactive stage.

    Per-bit inversion alone flips one particular stage bit with probability
    1/length, so networks would almost never grow; this targeted inversion is how
    stages switch on during the growth phase (repair still enforces max_depth).
    """
    if rng.random() >= rate:
        return bits
    out = list(bits)
    for i in range(stage_bits.start, stage_bits.stop):
        if not out[i]:
            out[i] = 1
            break
    return tuple(out)


def mut_flip_bits(bits: Bits, indpb: float, rng: np.random.Generator) -> Bits:
    """Binary inversion: each bit flips with probability ``indpb``."""
    flips = rng.random(len(bits)) < indpb
    return tuple(int(b) ^ int(f) for b, f in zip(bits, flips))


@dataclass(frozen=True)
class Offspring:
    """A child and the parent whose position it took (for the Markov lineage); a crossover
    child also names its other parent (``mate``), whose stages it may carry."""

    bits: Bits
    parent: Bits
    operator: Operator
    mate: Bits | None = None


def vary(population: Sequence[Bits], fitnesses: Sequence[float], *, elite: int, tournsize: int,
         rates: Callable[[Bits], tuple[float, float]], indpb: float,
         repair: Callable[[Bits], Bits], rng: np.random.Generator,
         crossover: Crossover | None = None,
         grow: Callable[[Bits, np.random.Generator], Bits] | None = None,
         mutate: Callable[[Bits, float, np.random.Generator], Bits] | None = None,
         ) -> list[Offspring]:
    """One generation of Algorithm 1's variation with unconditional replacement.

    The ``elite`` best survive unchanged; the rest of the new population are
    children of tournament-selected parent pairs: crossover with the first
    parent's own crossover rate, then bit-inversion mutation with probability
    equal to the child's own mutation rate (per-bit probability ``indpb``).
    ``rates(bits)`` returns an individual's (mutation rate, crossover rate);
    ``grow``, when given, is part of mutation (it may switch the next stage on).
    ``mutate(bits, rate, rng)``, when given, replaces plain bit inversion (the
    search passes the novelty rule's mutation, which always changes the network).
    Children are repaired, never dropped. A child's lineage parent is the parent
    that contributed its first segment.
    """
    crossover = crossover or cx_one_point
    n = len(population)
    out = [Offspring(population[i], population[i], Operator.ELITE) for i in sel_best(fitnesses, elite)]
    parents = sel_tournament(fitnesses, n - elite + (n - elite) % 2, tournsize, rng)
    for a_idx, b_idx in zip(parents[::2], parents[1::2]):
        a, b = population[a_idx], population[b_idx]
        children, ops = [a, b], [Operator.COPY, Operator.COPY]
        mates: list[Bits | None] = [None, None]
        if rng.random() < rates(a)[1]:
            children = list(crossover(a, b, rng))
            ops = [Operator.CROSSOVER, Operator.CROSSOVER]
            mates = [b, a]
        for k, lineage in enumerate((a, b)):
            child = children[k]
            if rng.random() < rates(child)[0]:
                rate = rates(child)[0]
                child = mutate(child, rate, rng) if mutate else mut_flip_bits(child, indpb, rng)
                if grow is not None:
                    child = grow(child, rng)
                ops[k] = (Operator.MUTATION if ops[k] == Operator.COPY
                          else Operator.CROSSOVER_MUTATION)
            out.append(Offspring(repair(child), lineage, ops[k], mates[k]))
    return out[:n]


def sel_nsga2(objectives: Sequence[Sequence[float]], k: int) -> list[int]:
    """Indices of ``k`` survivors by NSGA-II (non-dominated fronts, then crowding).

    Uses DEAP's ``selNSGA2`` on module-level individuals; it involves no randomness,
    so survivors depend only on the objective values and their order.
    """
    from deap import tools

    from gnas.search.individual import MultiIndividual

    inds = []
    for i, obj in enumerate(objectives):
        ind = MultiIndividual([i])
        ind.fitness.values = tuple(float(v) for v in obj)
        inds.append(ind)
    return [ind[0] for ind in tools.selNSGA2(inds, k)]


def crowded_ranks(objectives: Sequence[Sequence[float]]) -> list[float]:
    """A smaller-is-better score per individual: its position in NSGA-II's order.

    Tournaments on this score are NSGA-II's crowded-comparison tournaments.
    """
    order = sel_nsga2(objectives, len(objectives))
    rank = [0.0] * len(objectives)
    for position, index in enumerate(order):
        rank[index] = float(position)
    return rank
