"""The search loop (paper Algorithm 1) and the evaluation bookkeeping around it.

Pseudocode of :meth:`Search.run`, in the spirit of DEAP's ``eaSimple``::

    if no checkpoint: draw the initial population (edge of chaos or uniform)
    if generation == -1: evaluate it -> generation 0, checkpoint
    while generation < G:
        offspring = elitism + tournament + crossover + mutation (+ repair)
        evaluate offspring (cache first: a network is never trained twice)
        population = offspring                    # unconditional replacement
        step hooks (layer-wise competition, pruning), hall of fame, logbook
        on_generation_end -> checkpoint, Markov matrices, progress
    on_search_end -> best model retrained, test score, summary

Everything the next generation depends on (population, fitness, generator state)
is in the checkpoint, so resuming from it reproduces an uninterrupted run.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from gnas import chaos
from gnas.callbacks import CallbackList
from gnas.config import RunConfig
from gnas.errors import FatalError
from gnas.fitness import FitnessModel
from gnas.operators import Offspring, crowded_ranks, mut_grow, sel_nsga2, vary
from gnas.parallel import Executor
from gnas.results import EvalResult, EvalTask, derive_seed
from gnas.run_dir import RunDir, SearchState
from gnas.search_space import Bits, SearchSpace, bits_to_str, str_to_bits
from gnas.store import EvaluationStore

HALL_OF_FAME_SIZE = 5


@dataclass
class GenerationInfo:
    """What one generation did, for callbacks."""

    generation: int
    population: list[Bits]
    fitness: list[float]
    offspring: list[Offspring] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)   # evaluation key of each individual


StepHook = Callable[["Search", GenerationInfo], None]


class Search:
    """Runs (or resumes) one search in one run directory."""

    def __init__(self, cfg: RunConfig, space: SearchSpace, run_dir: RunDir, store: EvaluationStore,
                 executor: Executor, callbacks: CallbackList | None = None,
                 state: SearchState | None = None, lambda_c: Callable[[], tuple[float, str]] | None = None,
                 hooks: Sequence[StepHook] = ()) -> None:
        self.cfg = cfg
        self.space = space
        self.run_dir = run_dir
        self.store = store
        self.executor = executor
        self.callbacks = callbacks or CallbackList([])
        self.fitness_model = FitnessModel(cfg, space)
        self.hooks = list(hooks)
        self.state = state or self._initial_state(lambda_c)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = self.state.rng_state
        self.consecutive_failures = 0
        self.started = time.perf_counter()

    # --------------------------------------------------------------- the loop
    def run(self) -> SearchState:
        """Evolve until the configured number of generations; returns the final state."""
        self.callbacks.on_search_begin(self)
        if self.state.generation < 0:
            self.run_dir.save_state(self.state)  # the initial population, before any training
            population = [str_to_bits(g) for g in self.state.population]
            fitness = self.evaluate(population, generation=0)
            self._end_generation(GenerationInfo(0, population, fitness))
        while self.state.generation < self.cfg.evolution.generations:
            g = self.state.generation + 1
            self.callbacks.on_generation_begin(self, g)
            self._end_generation(self._next_generation(g))
        self.state.finished = True
        self.run_dir.save_state(self.state)
        self.callbacks.on_search_end(self)
        return self.state

    def _next_generation(self, g: int) -> GenerationInfo:
        """Variation, evaluation and replacement of one generation."""
        parents = [str_to_bits(x) for x in self.state.population]
        multi = self.objectives_count > 1
        selection = crowded_ranks(self.current_objectives()) if multi else self.current_fitness()
        offspring = vary(parents, selection, elite=0 if multi else self.cfg.evolution.elite,
                         tournsize=self.cfg.evolution.tournament, rates=self.rates,
                         indpb=self.indpb, repair=self.space.repair, rng=self.rng,
                         crossover=self.crossover, grow=self._grow_operator())
        children = [o.bits for o in offspring]
        results = self.evaluate_results(children, generation=g, keys=self._elite_keys(offspring))
        if not multi:  # unconditional replacement (elites are among the offspring)
            return GenerationInfo(g, children, [self.fitness_model.fitness(r) for r in results],
                                  offspring, keys=[r.key for r in results])
        # NSGA-II: parents and children compete on (error, complexity).
        pool = parents + children
        pool_keys = list(self.state.keys or [self.task_key(b) for b in parents]) + [r.key for r in results]
        pool_results = [self.store.lookup(k) for k in pool_keys]
        chosen = sel_nsga2([self.fitness_model.objectives(r) for r in pool_results], len(parents))
        return GenerationInfo(g, [pool[i] for i in chosen],
                              [self.fitness_model.fitness(pool_results[i]) for i in chosen],
                              offspring, keys=[pool_keys[i] for i in chosen])

    def _elite_keys(self, offspring: Sequence[Offspring]) -> list[str | None]:
        """Elites keep the evaluation key of the individual they copy.

        A pruned network's key names its pruning chain; a plain key would train the
        copy from scratch as another network.
        """
        keys: list[str | None] = []
        old = dict(zip(self.state.population, self.state.keys or []))
        for o in offspring:
            keys.append(old.get(bits_to_str(o.bits)) if o.operator == "elite" else None)
        return keys

    @property
    def objectives_count(self) -> int:
        return len(self.cfg.evolution.objectives.split(","))

    def current_objectives(self) -> list[tuple[float, ...]]:
        """(error, complexity / C_max) of the current population, from the store."""
        keys = self.state.keys or [self.task_key(str_to_bits(b)) for b in self.state.population]
        return [self.fitness_model.objectives(self.store.lookup(k)) for k in keys]

    def _end_generation(self, info: GenerationInfo) -> None:
        if not info.keys:
            info.keys = [self.task_key(b) for b in info.population]
        for hook in self.hooks:
            hook(self, info)
        self.state.generation = info.generation
        self.state.population = [bits_to_str(b) for b in info.population]
        self.state.fitness = [[f] for f in info.fitness]
        self.state.keys = list(info.keys)
        self._update_hall_of_fame(info.population, info.fitness, info.keys)
        info.record = self._statistics(info)
        self.state.logbook.append(info.record)
        self.state.rng_state = self.rng.bit_generator.state
        if self.objectives_count > 1:
            self._update_pareto_front()
        self.run_dir.save_state(self.state)
        self.callbacks.on_generation_end(self, info)

    # ------------------------------------------------------------ evaluation
    def evaluate(self, genomes: Sequence[Bits], generation: int, kind: str = "search",
                 options: dict[str, Any] | None = None) -> list[float]:
        """Fitness of each genome: from the store when known, else trained once."""
        results = self.evaluate_results(genomes, generation, kind, options)
        return [self.fitness_model.fitness(r) for r in results]

    def evaluate_results(self, genomes: Sequence[Bits], generation: int, kind: str = "search",
                         options: dict[str, Any] | None = None,
                         keys: Sequence[str | None] | None = None) -> list[EvalResult]:
        """Results of each genome: from the store when known, else trained once.

        ``keys`` may name an evaluation key per genome; a named key is used only
        when the store knows it, otherwise the key is derived from the genome.
        """
        keys = [k if k and self.store.lookup(k) is not None else self.task_key(b, options)
                for b, k in zip(genomes, keys or [None] * len(genomes))]
        known: dict[str, EvalResult] = {}
        tasks: dict[str, EvalTask] = {}
        for bits, key in zip(genomes, keys):
            if key in known or key in tasks:
                continue
            cached = self.store.lookup(key)
            if cached is not None:
                known[key] = cached
                self.callbacks.on_evaluated(self, cached, True)
            else:
                tasks[key] = EvalTask(key=key, genome=bits_to_str(bits), kind=kind,
                                      seed=derive_seed(self.cfg.evolution.seed, key),
                                      generation=generation, options=dict(options or {}))
        for result in self.executor.run(list(tasks.values())):
            self.store.add(result, self.fitness_model.fitness(result))
            known[result.key] = result
            self._count_failure(result)
            self.callbacks.on_evaluated(self, result, False)
        return [known[k] for k in keys]

    def task_key(self, bits: Bits, options: dict[str, Any] | None = None) -> str:
        key = self.space.key(bits)
        if options:
            key = f"{key}:{options.get('tag', '')}" if options.get("tag") else key
        return key

    def _count_failure(self, result: EvalResult) -> None:
        self.consecutive_failures = 0 if result.ok else self.consecutive_failures + 1
        limit = self.cfg.evolution.max_consecutive_failures
        if self.consecutive_failures >= limit:
            raise FatalError(f"{limit} evaluations failed in a row (last: {result.message.splitlines()[0] if result.message else 'no reason'}); "
                             f"check the data and the search space, then `gnas resume {self.run_dir.path}`.")

    # ------------------------------------------------------------- operators
    def rates(self, bits: Bits) -> tuple[float, float]:
        """The individual's own (mutation rate, crossover rate): self-adaptive genes."""
        hyper = self.space.hyper(bits)
        return hyper["mutation_rate"], hyper["crossover_rate"]

    def _grow_operator(self) -> Callable[[Bits, np.random.Generator], Bits] | None:
        """Growth mutation while the search grows (Algorithm 1); none once it prunes."""
        ev = self.cfg.evolution
        if not ev.growth or ev.grow_rate <= 0 or self.state.phase != "grow":
            return None
        return functools.partial(mut_grow, stage_bits=self.space.active_slice, rate=ev.grow_rate)

    @property
    def indpb(self) -> float:
        return self.cfg.evolution.indpb or 1.0 / self.space.length

    crossover: Callable | None = None  # a hook may install stage-wise crossover

    def current_fitness(self) -> list[float]:
        return [f[0] if f else self.fitness_model.worst for f in self.state.fitness]

    # ------------------------------------------------------------ bookkeeping
    def _initial_state(self, lambda_c: Callable[[], tuple[float, str]] | None) -> SearchState:
        ev = self.cfg.evolution
        rng = np.random.default_rng(ev.seed)
        if ev.init == "coe":
            value, source = lambda_c() if lambda_c else (chaos.PAPER_LAMBDA_C["vector"], "preset")
            population = self._edge_of_chaos_population(value, rng)
        else:  # 'complete chaos': uniform bits, so each gene is active with probability 1/2
            value, source = 0.5, "uniform"
            population = [self.space.random_bits(rng) for _ in range(ev.population)]
        if ev.growth:  # Algorithm 1: grow from base models with one active stage
            population = [self.space.base_model(b) for b in population]
        return SearchState(generation=-1, population=[bits_to_str(b) for b in population],
                           fitness=[None] * ev.population, rng_state=rng.bit_generator.state,
                           genome_length=self.space.length, l=self.space.l, init=ev.init,
                           lambda_c=value, lambda_c_source=source)

    def _edge_of_chaos_population(self, lambda_c: float, rng: np.random.Generator) -> list[Bits]:
        """Initial genomes from logistic-map orbits at the onset of chaos.

        The ``l`` connection genes are thresholded at ``lambda_c``: a fraction
        ``lambda_c`` of them is active. Width and hyper-parameter genes come from the
        same kind of orbit thresholded at 1/2: a Gray-coded value has no active or
        quiescent state, and tying it to ``lambda_c`` would push every learning rate
        and width to one end of its range (a measured ``lambda_c`` of 0.15 gives
        learning rates near 1e-4).
        """
        n, l = self.cfg.evolution.population, self.space.l
        connections = chaos.coe_bits(n, l, lambda_c, rng)
        values = chaos.coe_bits(n, self.space.length - l, 0.5, rng)
        return [self.space.repair(tuple(int(b) for b in np.concatenate([c, v])))
                for c, v in zip(connections, values)]

    def _update_hall_of_fame(self, population: Sequence[Bits], fitness: Sequence[float],
                             keys: Sequence[str]) -> None:
        entries = {e["key"]: e for e in self.state.hall_of_fame}
        for bits, f, key in zip(population, fitness, keys):
            if key not in entries or f < entries[key]["fitness"]:
                entries[key] = {"key": key, "genome": bits_to_str(bits), "fitness": f,
                                "generation": self.state.generation}
        ranked = sorted(entries.values(), key=lambda e: (e["fitness"], e["genome"]))
        self.state.hall_of_fame = ranked[:HALL_OF_FAME_SIZE]

    def _update_pareto_front(self) -> None:
        """The non-dominated (error, complexity) networks of every evaluation so far."""
        from gnas.pareto import front_of_rows

        measure = self.fitness_model.measure
        self.state.pareto_front = [
            {"key": r["genome_key"], "genome": r["genome"], "val_error": r["val_error"],
             measure: r[measure], "generation": r["generation"]}
            for r in front_of_rows(self.store.rows(), measure)]

    def _statistics(self, info: GenerationInfo) -> dict[str, Any]:
        fit = np.asarray(info.fitness, dtype=float)
        conn = np.asarray([self.space.connection_genes(b) for b in info.population])
        bits = np.asarray(info.population)
        best = self.store.lookup(info.keys[int(np.argmin(fit))])
        return {
            "generation": info.generation, "best": float(fit.min()), "mean": float(fit.mean()),
            "std": float(fit.std()), "best_error": best.val_error if best else None,
            "diversity": chaos.mean_hamming(bits), "entropy": chaos.per_locus_entropy(bits),
            "lambda": chaos.population_lambda(conn), "evaluations": self.store.count(),
            "failures": self.store.count("failed"), "phase": self.state.phase,
            "elapsed_s": round(time.perf_counter() - self.started, 3),
        }
