"""Steps: parts of Algorithm 1 that act on a generation after it is evaluated.

A step (layer-wise competition, pruning) works like a keras-tuner Oracle: it
decides, the loop acts. It sees a narrow, read-only :class:`GenerationView` (the
population, its fitness and evaluation keys, and functions to evaluate more
networks) and returns a :class:`StepDecision`: the individuals it wants to put
into the population and, optionally, the phase the search moves to and networks
it wants trained to the end (:class:`TrainRequest`, answered through
``on_trained``). A step reports nothing itself: the loop's callbacks do. The loop
applies every decision through :func:`apply_decision`, so there is one place where
the population changes. Each step owns its part of ``state.json`` through
``get_state()`` / ``set_state()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from gnas.genome.space import Bits
from gnas.records import EvalResult, Kind, Operator, Phase, StoredEvaluation
from gnas.search.operators import Offspring

Evaluate = Callable[[Sequence[Bits], Kind, "Mapping[str, Any] | None"], list[EvalResult]]


@dataclass(frozen=True)
class GenerationView:
    """What a step may see of one evaluated generation, and how it may evaluate more."""

    generation: int
    generations: int                     # the configured last generation
    phase: Phase
    population: tuple[Bits, ...]
    fitness: tuple[float, ...]
    keys: tuple[str, ...]                # evaluation key of each individual
    offspring: tuple[Offspring, ...]     # lineage of each slot (empty for generation 0)
    evaluate: Evaluate                   # cache first, trained once; kind labels the rows
    fitness_of: Callable[[EvalResult], float]
    lookup: Callable[[str], EvalResult | None]
    evaluations: Callable[[], list[StoredEvaluation]]   # every stored evaluation, typed
    key_of: Callable[[Bits], str]
    seed: int                            # the run seed

    @property
    def is_last(self) -> bool:
        return self.generation >= self.generations

    @property
    def elite_slots(self) -> set[int]:
        """Slots filled by elitism this generation."""
        return {i for i, o in enumerate(self.offspring) if o.operator == Operator.ELITE}


@dataclass(frozen=True)
class Replacement:
    """Put ``genome`` (evaluated as ``key`` with ``fitness``) into ``slot``.

    ``operator`` and ``parent`` label the slot's lineage for the Markov chain
    (a champion's parent is its host); ``operator=None`` keeps the slot's lineage,
    as when an individual only takes a better evaluation of its own network.
    """

    slot: int
    genome: Bits
    key: str
    fitness: float
    operator: Operator | None = None
    parent: Bits | None = None


@dataclass(frozen=True)
class TrainRequest:
    """Train ``genome`` (evaluated as ``key``) with its own seed, save it in ``out_dir``, score it.

    A step that wants a network trained to the end (the pruner's "before"
    model, say) asks for it in its decision; the loop has it trained and hands
    the scores back through the step's ``on_trained``.
    """

    genome: str
    key: str
    out_dir: Path
    options: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StepDecision:
    """What a step wants: replacements, applied in order, a phase change, trainings."""

    replacements: tuple[Replacement, ...] = ()
    phase: Phase | None = None
    train: tuple[TrainRequest, ...] = ()


class Step(Protocol):
    """A part of the search run after every evaluation round."""

    name: str

    def after_evaluation(self, view: GenerationView) -> StepDecision: ...
    def on_trained(self, request: TrainRequest, metrics: Mapping[str, Any]) -> None: ...
    def get_state(self) -> dict[str, Any]: ...
    def set_state(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class Generation:
    """A generation being assembled by the loop; steps never see it, only its view."""

    generation: int
    population: list[Bits]
    fitness: list[float]
    keys: list[str]
    offspring: list[Offspring] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def apply_decision(gen: Generation, decision: StepDecision) -> None:
    """Apply a step's replacements to the generation, in order (the one place it changes)."""
    for r in decision.replacements:
        gen.population[r.slot] = r.genome
        gen.fitness[r.slot] = r.fitness
        gen.keys[r.slot] = r.key
        aligned = r.slot < len(gen.offspring)
        if r.operator is not None and aligned:
            gen.offspring[r.slot] = Offspring(r.genome, r.parent or r.genome, r.operator)


def replace_worst(fitness: Sequence[float], keys: Sequence[str], protected: set[int],
                  candidates: Sequence[tuple[Bits, str, float]], *,
                  operator: Operator, parents: Sequence[Bits | None] | None = None,
                  ) -> tuple[list[Replacement], list[bool]]:
    """Each candidate in turn replaces the worst unprotected individual it beats.

    The one rule both steps use to insert networks: the slot is the worst
    individual outside ``protected`` (on ties the later slot), a candidate that
    does not beat it is rejected, and a filled slot becomes protected, so one
    candidate never evicts another of the same round.

    Returns:
        The replacements, and per candidate whether it was accepted.
    """
    fit, now, taken = list(fitness), list(keys), set(protected)
    out, accepted = [], []
    for n, (bits, key, f) in enumerate(candidates):
        slots = [i for i in range(len(fit)) if i not in taken]
        slot = max(slots, key=lambda i: (fit[i], i)) if slots else None
        ok = slot is not None and f < fit[slot] and key not in now
        accepted.append(ok)
        if ok:
            parent = parents[n] if parents else None
            out.append(Replacement(slot, bits, key, f, operator, parent))
            fit[slot], now[slot] = f, key
            taken.add(slot)
    return out, accepted
