"""The search loop (paper Algorithm 1): it only sequences.

Pseudocode of :meth:`Search.run`, in the spirit of DEAP's ``eaSimple``::

    if no checkpoint: draw the initial population (the strategy may redraw it)
    if generation == -1: evaluate it -> generation 0, checkpoint
    while generation < G:
        offspring = strategy.offspring(population)   # GA, random or aging
        every slot a new network (novelty rule)
        evaluate offspring (the evaluation room: cache, budget, failure cap)
        population = strategy.survivors(...)         # unconditional or NSGA-II
        steps (layer-wise competition, pruning) decide; the loop applies
        hall of fame, logbook, on_generation_end -> checkpoint, Markov matrices
    final pick (gnas.search.final); on_search_end

What to propose and whom to keep is the strategy's (``gnas.search.strategies``);
how a genome gets its result is the evaluation room's (``gnas.search.evaluation``).
Everything the next generation depends on (population, fitness, generator state,
each step's state) is in the checkpoint, so resuming from it reproduces an
uninterrupted run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnas.config import RunConfig
from gnas.errors import FatalError
from gnas.genome.protocol import Space
from gnas.genome.space import Bits, bits_to_str, str_to_bits
from gnas.inheritance.lineage import Inheritance, Parent
from gnas.records import EvalResult, Kind, Operator, Phase
from gnas.runs import clock
from gnas.runs.directory import RunDir, resume_command
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search import statistics
from gnas.search.callbacks import CallbackList
from gnas.search.evaluation import BudgetSpent, Evaluations, Executor, Schedule
from gnas.search.final import pick_final, train_to_end
from gnas.search.fitness import FitnessModel
from gnas.search.novelty import make_novel
from gnas.search.operators import Offspring
from gnas.search.step import Generation, GenerationView, Step, apply_decision
from gnas.search.strategies import Strategy, StrategyView

HALL_OF_FAME_SIZE = 5
STRATEGY_STATE = "strategy"  # the strategy's part of the steps' section of state.json


@dataclass(frozen=True)
class InitialPopulation:
    """Generation 0's genomes and where their lambda came from."""

    genomes: list[Bits]
    init: str
    lambda_c: float
    lambda_c_source: str


class Search:
    """Runs (or resumes) one search in one run directory.

    Args:
        strategy: Proposes offspring and chooses survivors (``gnas.search.strategies``).
        initial: Draws generation 0 from the run's generator (edge of chaos or
            uniform); called only when there is no checkpoint.
        steps: Run after every evaluation round, in order (see ``gnas.search.step``).
        schedule: The evaluation room's fidelity schedule (full fidelity when not given).
        inheritance: Weight inheritance from parents to children (none when not given).
    """

    def __init__(self, cfg: RunConfig, space: Space, run_dir: RunDir, store: EvaluationStore,
                 executor: Executor, strategy: Strategy, callbacks: CallbackList | None = None,
                 state: SearchState | None = None,
                 initial: Callable[[np.random.Generator], InitialPopulation] | None = None,
                 steps: Sequence[Step] = (), schedule: Schedule | None = None,
                 inheritance: Inheritance | None = None) -> None:
        self.cfg = cfg
        self.space = space
        self.run_dir = run_dir
        self.store = store
        self.executor = executor
        self.strategy = strategy
        self.callbacks = callbacks or CallbackList([])
        self.fitness_model = FitnessModel(cfg, space)
        self.steps = list(steps)
        self.state = state or self._initial_state(initial)
        self.strategy.set_state(self.state.steps.get(STRATEGY_STATE, {}))
        for step in self.steps:
            step.set_state(self.state.steps.get(step.name, {}))
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = self.state.rng_state
        self.evaluations = Evaluations(
            cfg, space, store, executor, self.fitness_model, self.state,
            report=lambda result, cached: self.callbacks.on_evaluated(self, result, cached),
            stop_hint=f"`{resume_command(run_dir.path)}`", schedule=schedule,
            inheritance=inheritance)
        self._reused_now = 0  # reuses of the generation in progress
        self.started = time.perf_counter()
        self.reserve_s = 0.0  # with a time budget: seconds kept for the final pick and training
        self._generation_s = 0.0  # how long the last generation took
        self._generation_began = self.started

    # --------------------------------------------------------------- the loop
    def run(self) -> SearchState:
        """Evolve until the configured number of generations; returns the final state."""
        self.callbacks.on_search_begin(self)
        # A finished run resumed with nothing to do writes no checkpoint: rewriting
        # it would replace state.prev.json, the previous generation, by a copy.
        nothing_to_do = self.state.finished and (
            self.state.generation >= self.cfg.evolution.generations or self.evaluations.spent())
        try:
            if self.state.generation < 0:
                self.run_dir.save_state(self.state)  # the initial population, before any training
                population = [str_to_bits(g) for g in self.state.population]
                results = self.evaluate(population, generation=0)
                self._end_generation(Generation(0, population, self._fitness(results),
                                                [r.key for r in results]))
            while self.state.generation < self.cfg.evolution.generations and (
                    not self.evaluations.spent() or self.evaluations.cut_short()) and self.in_time():
                g = self.state.generation + 1
                self.callbacks.on_generation_begin(self, g)
                self._end_generation(self._next_generation(g))
        except BudgetSpent as spent:
            # The generation in progress is not completed; what it trained still counts.
            done = [(bits, self.fitness_model.fitness(r), r.key) for bits, r in spent.evaluated]
            if done:
                self._update_hall_of_fame(*zip(*done), generation=spent.generation)
        self.evaluations.end_search()
        self.evaluations.inheritance.keep_only(self.state.keys)  # the last population's weights
        if not nothing_to_do:
            pick_final(self.state, self.cfg.evolution, self.store, self.evaluate,
                       self.fitness_model.fitness)
            self.state.finished = True
            self.run_dir.save_state(self.state)
        self.callbacks.on_search_end(self)
        return self.state

    def in_time(self) -> bool:
        """With a time budget (``evolution.max_seconds``): whether one more generation, as long as
        the last one, still ends before the seconds kept for the final training."""
        left = clock.left()
        return left == float("inf") or left - self.reserve_s >= self._generation_s

    def _next_generation(self, g: int) -> Generation:
        """The strategy's offspring, made novel, evaluated; the strategy's survivors."""
        view = self.strategy_view()
        # Only the population can be a parent, and what this generation trained may
        # survive into the next: a resumed run keeps exactly the weights an
        # uninterrupted one has at this point.
        self.evaluations.inheritance.keep_only([*view.keys, *self.store.keys_of(g)])
        proposal = self.strategy.offspring(view, self.rng)
        novel = make_novel(proposal.offspring, self.rng, mutate=proposal.redo, key_of=self.space.key,
                           evaluated=self.evaluations.evaluated_before(g),
                           tries=self.cfg.evolution.novelty_tries)
        self._reused_now = novel.reused  # counted when the generation completes
        results = self.evaluate([o.bits for o in novel.offspring], generation=g,
                                keys=self._elite_keys(novel.offspring),
                                parents=[self._parents(o, view) for o in novel.offspring])
        return self.strategy.survivors(view, g, novel.offspring, results)

    @staticmethod
    def _parents(offspring: Offspring, view: StrategyView) -> list[Parent]:
        """The child's parents in the current population (lineage parent first)."""
        key_of = dict(zip(view.population, view.keys))
        found = [Parent(bits, key_of[bits]) for bits in (offspring.parent, offspring.mate)
                 if bits is not None and bits in key_of]
        return found[:1] if len(found) == 2 and found[0].key == found[1].key else found

    def strategy_view(self) -> StrategyView:
        """The current population as the strategy sees it (worst fitness where none)."""
        return StrategyView(
            population=tuple(str_to_bits(x) for x in self.state.population),
            fitness=tuple(f[0] if f else self.fitness_model.worst for f in self.state.fitness),
            keys=tuple(self.state.keys), phase=Phase(self.state.phase),
            lookup=self.store.lookup, fitness_model=self.fitness_model)

    def _elite_keys(self, offspring: Sequence[Offspring]) -> list[str | None]:
        """Elites keep the evaluation key of the individual they copy.

        A pruned network's evaluation is not its plain architecture's; a plain key
        would train the copy from scratch as another network.
        """
        old = dict(zip(self.state.population, self.state.keys))
        return [old.get(bits_to_str(o.bits)) if o.operator == Operator.ELITE else None
                for o in offspring]

    def _end_generation(self, gen: Generation) -> None:
        for step in self.steps:
            decision = step.after_evaluation(self.view(gen))
            apply_decision(gen, decision)
            if decision.phase is not None:
                self.state.phase = decision.phase
            for request in decision.train:
                step.on_trained(request, train_to_end(self.executor, self.cfg.evolution, request))
        self.state.generation = gen.generation
        self.state.reused += self._reused_now
        self._reused_now = 0
        self.state.population = [bits_to_str(b) for b in gen.population]
        self.state.fitness = [[f] for f in gen.fitness]
        self.state.keys = list(gen.keys)
        self.state.steps = {step.name: step.get_state() for step in self.steps}
        strategy_state = self.strategy.get_state()
        if strategy_state:  # stateless strategies leave state.json as it was
            self.state.steps[STRATEGY_STATE] = strategy_state
        self._update_hall_of_fame(gen.population, gen.fitness, gen.keys)
        gen.record = self._statistics(gen)
        self.state.logbook.append(gen.record)
        self.state.rng_state = self.rng.bit_generator.state
        front = self.strategy.front(self.store.evaluations)
        if front is not None:
            self.state.pareto_front = front
        self.run_dir.save_state(self.state)
        now = time.perf_counter()
        self._generation_s, self._generation_began = now - self._generation_began, now
        self.callbacks.on_generation_end(self, gen)

    def view(self, gen: Generation) -> GenerationView:
        """The narrow, read-only view of ``gen`` that steps decide on."""
        def evaluate(genomes: Sequence[Bits], kind: Kind = Kind.SEARCH,
                     options: Mapping[str, Any] | None = None) -> list[EvalResult]:
            return self.evaluate(genomes, gen.generation, kind, options)

        return GenerationView(
            generation=gen.generation, generations=self.cfg.evolution.generations,
            phase=Phase(self.state.phase), population=tuple(gen.population),
            fitness=tuple(gen.fitness), keys=tuple(gen.keys), offspring=tuple(gen.offspring),
            evaluate=evaluate, fitness_of=self.fitness_model.fitness, lookup=self.store.lookup,
            evaluations=self.store.evaluations, key_of=self.space.key,
            seed=self.cfg.evolution.seed)

    # ------------------------------------------------------------ evaluation
    def evaluate(self, genomes: Sequence[Bits], generation: int, kind: Kind = Kind.SEARCH,
                 options: Mapping[str, Any] | None = None,
                 keys: Sequence[str | None] | None = None,
                 parents: Sequence[Sequence[Parent]] | None = None) -> list[EvalResult]:
        """Results of each genome, through the evaluation room (see :class:`Evaluations`).

        Networks of earlier generations the fidelity schedule promoted meanwhile
        enter the hall of fame with their new results.
        """
        try:
            return self.evaluations.evaluate(genomes, generation, kind, options, keys, parents)
        finally:
            promoted = [r for r in self.evaluations.take_promoted() if r.ok]
            if promoted:
                self._update_hall_of_fame([str_to_bits(r.genome) for r in promoted],
                                          self._fitness(promoted), [r.key for r in promoted],
                                          generation=generation)

    def _fitness(self, results: Sequence[EvalResult]) -> list[float]:
        return [self.fitness_model.fitness(r) for r in results]

    # ------------------------------------------------------------ bookkeeping
    def _initial_state(self, initial: Callable[[np.random.Generator], InitialPopulation] | None
                       ) -> SearchState:
        rng = np.random.default_rng(self.cfg.evolution.seed)
        if initial is None:
            raise FatalError("Search: a new search needs an initial population (initial=...).")
        drawn = self.strategy.initial(initial(rng), rng)
        return SearchState(generation=-1, population=[bits_to_str(b) for b in drawn.genomes],
                           fitness=[None] * len(drawn.genomes), rng_state=rng.bit_generator.state,
                           genome_length=self.space.length, l=self.space.l, init=drawn.init,
                           lambda_c=drawn.lambda_c, lambda_c_source=drawn.lambda_c_source)

    def _update_hall_of_fame(self, population: Sequence[Bits], fitness: Sequence[float],
                             keys: Sequence[str], generation: int | None = None) -> None:
        """Keep the best distinct networks; ``generation`` is where they were found."""
        found = self.state.generation if generation is None else generation
        entries = {e["key"]: e for e in self.state.hall_of_fame}
        for bits, f, key in zip(population, fitness, keys):
            if key not in entries or f < entries[key]["fitness"]:
                entries[key] = {"key": key, "genome": bits_to_str(bits), "fitness": f,
                                "generation": found}
        ranked = sorted(entries.values(), key=lambda e: (e["fitness"], e["genome"]))
        self.state.hall_of_fame = ranked[:HALL_OF_FAME_SIZE]

    def _statistics(self, gen: Generation) -> dict[str, Any]:
        fit = np.asarray(gen.fitness, dtype=float)
        conn = np.asarray([self.space.connection_genes(b) for b in gen.population])
        bits = np.asarray(gen.population)
        best = self.store.lookup(gen.keys[int(np.argmin(fit))])
        return {
            "generation": gen.generation, "best": float(fit.min()), "mean": float(fit.mean()),
            "std": float(fit.std()), "best_error": best.val_error if best else None,
            "diversity": statistics.mean_hamming(bits), "entropy": statistics.per_locus_entropy(bits),
            "lambda": statistics.population_lambda(conn), "evaluations": self.store.count(),
            "failures": self.store.count("failed"), "phase": str(self.state.phase),
            "elapsed_s": round(time.perf_counter() - self.started, 3),
        }
