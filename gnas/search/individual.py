"""DEAP fitness and individual classes, defined at module level.

DEAP's ``creator`` module would make these classes at run time inside
``deap.creator``; worker processes that never made the same classes cannot
unpickle them. Written out here, they pickle by name anywhere.
"""
from __future__ import annotations

from typing import Iterable

from deap import base


class FitnessMin(base.Fitness):
    """Paper eq. 3, ``F = E + alpha*C/C_max + mu*P``: smaller is better."""

    weights = (-1.0,)


class FitnessMulti(base.Fitness):
    """(error, complexity), both minimised, for NSGA-II."""

    weights = (-1.0, -1.0)


class Individual(list):
    """A chromosome: a list of 0/1 ints with a single-objective fitness."""

    fitness_class: type[base.Fitness] = FitnessMin

    def __init__(self, genes: Iterable[int] = ()) -> None:
        super().__init__(int(g) for g in genes)
        self.fitness = self.fitness_class()

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(self)


class MultiIndividual(Individual):
    """A chromosome with an (error, complexity) fitness."""

    fitness_class = FitnessMulti
