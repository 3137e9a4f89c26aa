"""The run's variation operators, bound to its search space and settings.

The operators in :mod:`gnas.search.operators` and :mod:`gnas.search.novelty` are
pure functions; a strategy needs them with the run's per-bit probability, key,
repair and growth setting bound, and with growth only while the search grows
(Algorithm 1). :class:`Variation` is that binding, built once by the session.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from gnas.genome.protocol import NeighbourSpace, Space
from gnas.genome.space import Bits
from gnas.records import Phase
from gnas.search.novelty import Mutate, expressed_mutation, remutation
from gnas.search.operators import Crossover, cx_one_point, growth


class Variation:
    """Mutation, growth and crossover of one run.

    Args:
        space: The run's search space (key, repair, self-adaptive rates).
        indpb: Per-bit flip probability (``evolution.indpb``, or 0 for 1/length).
        grow_rate: Probability of the growth mutation; 0 or ``growth=False`` turns it off.
        crossover: The crossover operator (single-point unless the session wires
            stage-wise crossover for the layer-wise competition).
    """

    def __init__(self, space: Space, *, indpb: float = 0.0, growth: bool = True,
                 grow_rate: float = 0.0, crossover: Crossover = cx_one_point) -> None:
        self.space = space
        self.indpb = indpb or 1.0 / space.length
        self.growth = growth
        self.grow_rate = grow_rate
        self.crossover = crossover

    def rates(self, bits: Bits) -> tuple[float, float]:
        """The individual's own (mutation rate, crossover rate): self-adaptive genes."""
        hyper = self.space.hyper(bits)
        return hyper["mutation_rate"], hyper["crossover_rate"]

    def grow(self, phase: Phase) -> Callable[[Bits, np.random.Generator], Bits] | None:
        """Growth mutation while the search grows (Algorithm 1); none once it prunes."""
        if not self.growth or phase != Phase.GROW:
            return None
        return growth(self.space.active_slice, self.grow_rate)

    def mutate(self, bits: Bits, rate: float, rng: np.random.Generator) -> Bits:
        """Mutation that always changes the network (see ``gnas.search.novelty``)."""
        return expressed_mutation(indpb=self.indpb, key_of=self.space.key, repair=self.space.repair,
                                  neighbour=neighbour_of(self.space))(bits, rate, rng)

    def mutate_own_rate(self, bits: Bits, rng: np.random.Generator) -> Bits:
        """:meth:`mutate` at the individual's own mutation rate."""
        return self.mutate(bits, self.rates(bits)[0], rng)

    def remutate(self, phase: Phase) -> Mutate:
        """The novelty rule's extra mutation of a duplicate child (growth included)."""
        return remutation(self.mutate, rates=self.rates, repair=self.space.repair,
                          grow=self.grow(phase))


def neighbour_of(space: Space) -> Callable[[Bits, np.random.Generator], Bits] | None:
    """The move a space's mutation forces: its own neighbourhood, or None for an expressed flip."""
    return space.neighbour if isinstance(space, NeighbourSpace) else None
