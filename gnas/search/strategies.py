"""Search strategies in one engine: the paper's GA and the baselines gnas reports against.

All three produce one generation's offspring from the current population with the
run's own generator, so they share the evaluator, the cache, the novelty rule, the
budget and the checkpoint, and each resumes exactly like the GA:

* ``ga``: Algorithm 1's variation (elitism, tournament, crossover, mutation);
* ``random``: uniform genomes of the same space, the NAS community's standard
  baseline (a population slot is just a batch of draws);
* ``aging``: regularized evolution (Real et al. 2019): each child is the mutant of
  the winner of a tournament on a uniform sample, and the oldest individuals die.
  The population is kept oldest first; a generation replaces its older half.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable, Sequence

import numpy as np

from gnas.genome.space import Bits
from gnas.records import Operator
from gnas.search.operators import Offspring


class Strategy(str, Enum):
    """The values of ``evolution.strategy``."""

    GA = "ga"
    RANDOM = "random"
    AGING = "aging"


def random_offspring(n: int, rng: np.random.Generator,
                     draw: Callable[[np.random.Generator], Bits]) -> list[Offspring]:
    """``n`` uniform genomes; each is its own lineage (no operator acted on a parent)."""
    out = []
    for _ in range(n):
        bits = draw(rng)
        out.append(Offspring(bits, bits, Operator.RANDOM))
    return out


def aging_batch(population: int) -> int:
    """Children per generation of aging evolution: the older half of the population."""
    return max(1, population // 2)


def aging_offspring(population: Sequence[Bits], fitness: Sequence[float], *, sample: int,
                    rng: np.random.Generator, mutate: Callable[[Bits, np.random.Generator], Bits],
                    ) -> list[Offspring]:
    """One generation of regularized evolution on a population ordered oldest first.

    The :func:`aging_batch` oldest are removed whatever their fitness (that is the
    regularisation); the survivors keep their order (labelled elites: copied
    unchanged) and the children, each the mutant of the best of ``sample`` drawn
    uniformly without replacement from the whole current population, join at the end.
    """
    n = len(population)
    batch = aging_batch(n)
    out = [Offspring(population[i], population[i], Operator.ELITE) for i in range(batch, n)]
    k = min(sample, n)
    for _ in range(batch):
        aspirants = rng.choice(n, size=k, replace=False)
        parent = population[int(min(aspirants, key=lambda i: (fitness[i], i)))]
        out.append(Offspring(mutate(parent, rng), parent, Operator.MUTATION))
    return out
