"""Search strategies in one engine: the paper's GA and the baselines gnas reports against.

A strategy is a plug, the way Optuna takes ``sampler=``: the loop asks it for one
generation's offspring (:meth:`Strategy.offspring`) and for the survivors once
they are evaluated (:meth:`Strategy.survivors`), and never asks which strategy it
is. All of them draw from the run's own generator, so they share the evaluator,
the cache, the novelty rule, the budget and the checkpoint, and each resumes
exactly like the GA:

* :class:`GeneticAlgorithm`: Algorithm 1's variation (elitism, tournament,
  crossover, mutation);
* :class:`RandomSearch`: uniform genomes of the same space, the NAS community's
  standard baseline (a population slot is just a batch of draws);
* :class:`AgingEvolution`: regularized evolution (Real et al. 2019): each child is
  the mutant of the winner of a tournament on a uniform sample, and the oldest
  individuals die. The population is kept oldest first; a generation replaces
  its older half.

How survivors are chosen is a plug of its own (:class:`Survival`): unconditional
replacement (the paper's), or NSGA-II (:class:`NSGA2`) when the run has several
objectives; then parents and children compete on (error, complexity) and the
tournaments rank by NSGA-II's crowded comparison.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from gnas.config import EvolutionConfig
from gnas.genome.space import Bits
from gnas.records import EvalResult, Operator, Phase, StoredEvaluation
from gnas.search.fitness import FitnessModel
from gnas.search.novelty import Mutate, distinct_population
from gnas.search.operators import Offspring, crowded_ranks, sel_nsga2, vary
from gnas.search.pareto import front_of
from gnas.search.step import Generation
from gnas.search.variation import Variation

if TYPE_CHECKING:  # pragma: no cover
    from gnas.search.loop import InitialPopulation


class StrategyName(str, Enum):
    """The values of ``evolution.strategy``."""

    GA = "ga"
    RANDOM = "random"
    AGING = "aging"


@dataclass(frozen=True)
class StrategyView:
    """What a strategy sees of the current population (read-only)."""

    population: tuple[Bits, ...]
    fitness: tuple[float, ...]           # worst fitness for a slot not evaluated
    keys: tuple[str, ...]                # evaluation key of each individual
    phase: Phase
    lookup: Callable[[str], EvalResult | None]
    fitness_model: FitnessModel


@dataclass(frozen=True)
class Proposal:
    """One generation's offspring, and how to replace a child whose network is not new."""

    offspring: list[Offspring]
    redo: Mutate


class Survival(Protocol):
    """Which of the parents and evaluated children make the next population."""

    keeps_elites: bool  # whether the GA's elitism applies (NSGA-II keeps parents itself)

    def ranks(self, view: StrategyView) -> list[float]: ...
    def survivors(self, view: StrategyView, generation: int, offspring: Sequence[Offspring],
                  results: Sequence[EvalResult]) -> Generation: ...
    def front(self, evaluations: Callable[[], list[StoredEvaluation]]) -> list[dict[str, Any]] | None: ...


class Unconditional:
    """The paper's unconditional replacement: the children are the next population."""

    keeps_elites = True

    def ranks(self, view: StrategyView) -> list[float]:
        return list(view.fitness)

    def survivors(self, view: StrategyView, generation: int, offspring: Sequence[Offspring],
                  results: Sequence[EvalResult]) -> Generation:
        fit = view.fitness_model.fitness
        return Generation(generation, [o.bits for o in offspring], [fit(r) for r in results],
                          [r.key for r in results], list(offspring))

    def front(self, evaluations: Callable[[], list[StoredEvaluation]]) -> list[dict[str, Any]] | None:
        return None  # one objective: no front to keep


class NSGA2:
    """NSGA-II (DEAP's ``selNSGA2``): parents and children compete on (error, complexity).

    Args:
        measure: The complexity column (``params`` or ``flops``) of the front kept
            in the checkpoint.
    """

    keeps_elites = False

    def __init__(self, measure: str) -> None:
        self.measure = measure

    def ranks(self, view: StrategyView) -> list[float]:
        """Crowded-comparison ranks: tournaments on them are NSGA-II's tournaments."""
        return crowded_ranks([view.fitness_model.objectives(view.lookup(k)) for k in view.keys])

    def survivors(self, view: StrategyView, generation: int, offspring: Sequence[Offspring],
                  results: Sequence[EvalResult]) -> Generation:
        pool = list(view.population) + [o.bits for o in offspring]
        pool_keys = list(view.keys) + [r.key for r in results]
        pool_results = [view.lookup(k) for k in pool_keys]
        model = view.fitness_model
        chosen = sel_nsga2([model.objectives(r) for r in pool_results], len(view.population))
        return Generation(generation, [pool[i] for i in chosen],
                          [model.fitness(pool_results[i]) for i in chosen],
                          [pool_keys[i] for i in chosen], list(offspring))

    def front(self, evaluations: Callable[[], list[StoredEvaluation]]) -> list[dict[str, Any]] | None:
        """The non-dominated (error, complexity) networks of every evaluation so far."""
        return [{"key": e.key, "genome": e.result.genome, "val_error": e.result.val_error,
                 self.measure: getattr(e.result, self.measure), "generation": e.result.generation}
                for e in front_of(evaluations(), self.measure)]


class Strategy(Protocol):
    """Proposes offspring and chooses survivors; owns its part of the checkpoint."""

    name: str

    def initial(self, drawn: "InitialPopulation", rng: np.random.Generator) -> "InitialPopulation": ...
    def offspring(self, view: StrategyView, rng: np.random.Generator) -> Proposal: ...
    def survivors(self, view: StrategyView, generation: int, offspring: Sequence[Offspring],
                  results: Sequence[EvalResult]) -> Generation: ...
    def front(self, evaluations: Callable[[], list[StoredEvaluation]]) -> list[dict[str, Any]] | None: ...
    def get_state(self) -> dict[str, Any]: ...
    def set_state(self, state: Mapping[str, Any]) -> None: ...


class _Plug:
    """What every strategy shares: survival, generation 0 without duplicates, empty state.

    The three strategies keep everything they depend on in the population's
    order and the run's generator, both already in the checkpoint, so their own
    state is empty; a strategy with memory (a surrogate model, say) returns it
    from ``get_state`` and gets it back through ``set_state``.
    """

    name = ""

    def __init__(self, evolution: EvolutionConfig, variation: Variation,
                 survival: Survival | None = None) -> None:
        self.evolution = evolution
        self.variation = variation
        self.survival: Survival = survival or Unconditional()

    def initial(self, drawn: "InitialPopulation", rng: np.random.Generator) -> "InitialPopulation":
        """Generation 0 as drawn, with any repeated network replaced by a mutant of it."""
        genomes = distinct_population(drawn.genomes, rng, mutate=self.variation.mutate_own_rate,
                                      key_of=self.variation.space.key,
                                      tries=self.evolution.novelty_tries)
        return dataclasses.replace(drawn, genomes=genomes)

    def survivors(self, view: StrategyView, generation: int, offspring: Sequence[Offspring],
                  results: Sequence[EvalResult]) -> Generation:
        return self.survival.survivors(view, generation, offspring, results)

    def front(self, evaluations: Callable[[], list[StoredEvaluation]]) -> list[dict[str, Any]] | None:
        return self.survival.front(evaluations)

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore (see the class docstring)."""


class GeneticAlgorithm(_Plug):
    """Algorithm 1: elitism, tournament, crossover and mutation at each individual's own rates."""

    name = StrategyName.GA.value

    def offspring(self, view: StrategyView, rng: np.random.Generator) -> Proposal:
        ev, v = self.evolution, self.variation
        elite = ev.elite if self.survival.keeps_elites else 0
        children = vary(list(view.population), self.survival.ranks(view), elite=elite,
                        tournsize=ev.tournament, rates=v.rates, indpb=v.indpb,
                        repair=v.space.repair, rng=rng, crossover=v.crossover,
                        grow=v.grow(view.phase), mutate=v.mutate)
        return Proposal(children, v.remutate(view.phase))


class RandomSearch(_Plug):
    """Uniform genomes of the same space, generation 0 included."""

    name = StrategyName.RANDOM.value

    def initial(self, drawn: "InitialPopulation", rng: np.random.Generator) -> "InitialPopulation":
        draw = self.variation.space.random_bits
        uniform = dataclasses.replace(drawn, genomes=[draw(rng) for _ in drawn.genomes],
                                      init="random")
        return super().initial(uniform, rng)

    def offspring(self, view: StrategyView, rng: np.random.Generator) -> Proposal:
        draw = self.variation.space.random_bits
        return Proposal(random_offspring(len(view.population), rng, draw),
                        lambda bits, rng: draw(rng))


class AgingEvolution(_Plug):
    """Regularized evolution: the oldest half dies, tournament winners' mutants join."""

    name = StrategyName.AGING.value

    def offspring(self, view: StrategyView, rng: np.random.Generator) -> Proposal:
        remutate = self.variation.remutate(view.phase)
        return Proposal(aging_offspring(list(view.population), self.survival.ranks(view),
                                        sample=self.evolution.tournament, rng=rng,
                                        mutate=remutate, children=self.evolution.aging_children),
                        remutate)


def random_offspring(n: int, rng: np.random.Generator,
                     draw: Callable[[np.random.Generator], Bits]) -> list[Offspring]:
    """``n`` uniform genomes; each is its own lineage (no operator acted on a parent)."""
    out = []
    for _ in range(n):
        bits = draw(rng)
        out.append(Offspring(bits, bits, Operator.RANDOM))
    return out


def aging_batch(population: int, children: int = 0) -> int:
    """Children per generation of aging evolution: ``children`` (at most the population), or
    with 0 the older half of the population."""
    return min(population, children) if children else max(1, population // 2)


def aging_offspring(population: Sequence[Bits], fitness: Sequence[float], *, sample: int,
                    rng: np.random.Generator, mutate: Callable[[Bits, np.random.Generator], Bits],
                    children: int = 0) -> list[Offspring]:
    """One generation of regularized evolution on a population ordered oldest first.

    The :func:`aging_batch` oldest are removed whatever their fitness (that is the
    regularisation); the survivors keep their order (labelled elites: copied
    unchanged) and the children, each the mutant of the best of ``sample`` drawn
    uniformly without replacement from the whole current population, join at the end.
    """
    n = len(population)
    batch = aging_batch(n, children)
    out = [Offspring(population[i], population[i], Operator.ELITE) for i in range(batch, n)]
    k = min(sample, n)
    for _ in range(batch):
        aspirants = rng.choice(n, size=k, replace=False)
        parent = population[int(min(aspirants, key=lambda i: (fitness[i], i)))]
        out.append(Offspring(mutate(parent, rng), parent, Operator.MUTATION))
    return out


#: ``evolution.strategy`` -> its class; the config offers exactly these names (a test holds them
#: equal), and a user's own strategy object, passed to ``gnas.evolve(strategy=...)``, replaces one.
STRATEGIES: dict[str, type[_Plug]] = {StrategyName.GA.value: GeneticAlgorithm,
                                      StrategyName.RANDOM.value: RandomSearch,
                                      StrategyName.AGING.value: AgingEvolution}
