"""The search loop (paper Algorithm 1) and the evaluation bookkeeping around it.

Pseudocode of :meth:`Search.run`, in the spirit of DEAP's ``eaSimple``::

    if no checkpoint: draw the initial population (edge of chaos or uniform)
    if generation == -1: evaluate it -> generation 0, checkpoint
    while generation < G:
        offspring = elitism + tournament + crossover + mutation (+ repair)
        evaluate offspring (cache first: a network is never trained twice)
        population = offspring                    # unconditional replacement
        steps (layer-wise competition, pruning) decide; the loop applies
        hall of fame, logbook, on_generation_end -> checkpoint, Markov matrices
    on_search_end

Everything the next generation depends on (population, fitness, generator state,
each step's state) is in the checkpoint, so resuming from it reproduces an
uninterrupted run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from gnas.config import RunConfig
from gnas.errors import FatalError
from gnas.genome.space import Bits, SearchSpace, bits_to_str, str_to_bits
from gnas.records import EvalResult, EvalTask, Kind, Operator, Phase, derive_seed
from gnas.runs.directory import RunDir, resume_command
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search import statistics
from gnas.search.callbacks import CallbackList
from gnas.search.fitness import FitnessModel
from gnas.search.operators import (Crossover, Offspring, crowded_ranks, cx_one_point, growth,
                                   sel_nsga2, vary)
from gnas.search.novelty import distinct_population, expressed_mutation, make_novel, remutation
from gnas.search.pareto import front_of_rows
from gnas.search.strategies import Strategy, aging_offspring, random_offspring
from gnas.search.step import Generation, GenerationView, Step, apply_decision

HALL_OF_FAME_SIZE = 5


class Executor(Protocol):
    """Where evaluations run (``gnas.execution``): results are yielded as each one ends."""

    def run(self, tasks: list[EvalTask]) -> Iterator[EvalResult]: ...
    def final(self, genome: str, seed: int, out_dir: Path,
              options: Mapping[str, Any] | None = None,
              report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class InitialPopulation:
    """Generation 0's genomes and where their lambda came from."""

    genomes: list[Bits]
    init: str
    lambda_c: float
    lambda_c_source: str



def place_pick_winner(fame: list[dict[str, Any]], winner: str,
                      candidates: set[str]) -> list[dict[str, Any]]:
    """The hall of fame with the final pick's winner where the best re-trained candidate was.

    Only the unpruned candidates are re-trained, so the pick may reorder them
    and nothing else: a pruned network that ranked above all of them (its
    fitness is the pruner's fine-tuned one, which a fresh seed cannot
    reproduce) stays ahead, instead of losing its place to its own base.
    """
    best = next(e for e in fame if e["key"] == winner)
    first = next(i for i, e in enumerate(fame) if e["key"] in candidates)
    rest = [e for e in fame if e is not best]
    return rest[:first] + [best] + rest[first:]

class Search:
    """Runs (or resumes) one search in one run directory.

    Args:
        initial: Draws generation 0 from the run's generator (edge of chaos or
            uniform); called only when there is no checkpoint.
        steps: Run after every evaluation round, in order (see ``gnas.search.step``).
        crossover: The crossover operator (single-point unless the session wires
            stage-wise crossover for the layer-wise competition).
    """

    def __init__(self, cfg: RunConfig, space: SearchSpace, run_dir: RunDir, store: EvaluationStore,
                 executor: Executor, callbacks: CallbackList | None = None,
                 state: SearchState | None = None,
                 initial: Callable[[np.random.Generator], InitialPopulation] | None = None,
                 steps: Sequence[Step] = (), crossover: Crossover = cx_one_point) -> None:
        self.cfg = cfg
        self.space = space
        self.run_dir = run_dir
        self.store = store
        self.executor = executor
        self.callbacks = callbacks or CallbackList([])
        self.fitness_model = FitnessModel(cfg, space)
        self.steps = list(steps)
        self.crossover = crossover
        self.state = state or self._initial_state(initial)
        for step in self.steps:
            step.set_state(self.state.steps.get(step.name, {}))
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = self.state.rng_state
        self.consecutive_failures = 0
        self._reused_now = 0  # reuses of the generation in progress
        self._final_from = 0  # final_trained when the final pick began
        self.searching = True  # False once the search ends and the final pick trains
        self.started = time.perf_counter()

    # --------------------------------------------------------------- the loop
    def run(self) -> SearchState:
        """Evolve until the configured number of generations; returns the final state."""
        self.callbacks.on_search_begin(self)
        # A finished run resumed with nothing to do writes no checkpoint: rewriting
        # it would replace state.prev.json, the previous generation, by a copy.
        nothing_to_do = self.state.finished and (
            self.state.generation >= self.cfg.evolution.generations or self.budget_left() == 0)
        try:
            if self.state.generation < 0:
                self.run_dir.save_state(self.state)  # the initial population, before any training
                population = [str_to_bits(g) for g in self.state.population]
                results = self.evaluate_results(population, generation=0)
                self._end_generation(Generation(0, population, self._fitness(results),
                                                [r.key for r in results]))
            while self.state.generation < self.cfg.evolution.generations and self.budget_left() != 0:
                g = self.state.generation + 1
                self.callbacks.on_generation_begin(self, g)
                self._end_generation(self._next_generation(g))
        except BudgetSpent as spent:
            # The generation in progress is not completed; what it trained still counts.
            done = [(bits, self.fitness_model.fitness(r), r.key) for bits, r in spent.evaluated]
            if done:
                self._update_hall_of_fame(*zip(*done), generation=spent.generation)
        self.searching = False
        if not nothing_to_do:
            self._pick_final()
            self.state.finished = True
            self.run_dir.save_state(self.state)
        self.callbacks.on_search_end(self)
        return self.state

    def _next_generation(self, g: int) -> Generation:
        """Variation (by the configured strategy), evaluation and replacement of one generation."""
        parents = [str_to_bits(x) for x in self.state.population]
        multi = self.objectives_count > 1
        selection = crowded_ranks(self.current_objectives()) if multi else self.current_fitness()
        offspring, redo = self._offspring(parents, selection, multi)
        novel = make_novel(offspring, self.rng, mutate=redo, key_of=self.space.key,
                           evaluated=_EvaluatedKeys(self.store, before_generation=g),
                           tries=self.cfg.evolution.novelty_tries)
        offspring = novel.offspring
        self._reused_now = novel.reused  # counted when the generation completes
        children = [o.bits for o in offspring]
        results = self.evaluate_results(children, generation=g, keys=self._elite_keys(offspring))
        if not multi:  # unconditional replacement (elites are among the offspring)
            return Generation(g, children, self._fitness(results), [r.key for r in results], offspring)
        # NSGA-II: parents and children compete on (error, complexity).
        pool = parents + children
        pool_keys = list(self.state.keys) + [r.key for r in results]
        pool_results = [self.store.lookup(k) for k in pool_keys]
        chosen = sel_nsga2([self.fitness_model.objectives(r) for r in pool_results], len(parents))
        return Generation(g, [pool[i] for i in chosen],
                          [self.fitness_model.fitness(pool_results[i]) for i in chosen],
                          [pool_keys[i] for i in chosen], offspring)

    def _offspring(self, parents: list[Bits], selection: list[float], multi: bool
                   ) -> tuple[list[Offspring], Callable[[Bits, np.random.Generator], Bits]]:
        """The strategy's children, and how it replaces a child whose network is not new."""
        ev = self.cfg.evolution
        if ev.strategy == Strategy.RANDOM:
            draw = self.space.random_bits
            return random_offspring(len(parents), self.rng, draw), lambda bits, rng: draw(rng)
        if ev.strategy == Strategy.AGING:
            return aging_offspring(parents, selection, sample=ev.tournament, rng=self.rng,
                                   mutate=self._remutate), self._remutate
        return vary(parents, selection, elite=0 if multi else ev.elite, tournsize=ev.tournament,
                    rates=self.rates, indpb=self.indpb, repair=self.space.repair, rng=self.rng,
                    crossover=self.crossover, grow=self._grow_operator(),
                    mutate=self._mutate), self._remutate

    def _elite_keys(self, offspring: Sequence[Offspring]) -> list[str | None]:
        """Elites keep the evaluation key of the individual they copy.

        A pruned network's evaluation is not its plain architecture's; a plain key
        would train the copy from scratch as another network.
        """
        old = dict(zip(self.state.population, self.state.keys))
        return [old.get(bits_to_str(o.bits)) if o.operator == Operator.ELITE else None
                for o in offspring]

    @property
    def objectives_count(self) -> int:
        return len(self.cfg.evolution.objectives.split(","))

    def current_objectives(self) -> list[tuple[float, ...]]:
        """(error, complexity / C_max) of the current population, from the store."""
        return [self.fitness_model.objectives(self.store.lookup(k)) for k in self.state.keys]

    def _end_generation(self, gen: Generation) -> None:
        for step in self.steps:
            decision = step.after_evaluation(self.view(gen))
            apply_decision(gen, decision)
            if decision.phase is not None:
                self.state.phase = decision.phase
        self.state.generation = gen.generation
        self.state.reused += self._reused_now
        self._reused_now = 0
        self.state.population = [bits_to_str(b) for b in gen.population]
        self.state.fitness = [[f] for f in gen.fitness]
        self.state.keys = list(gen.keys)
        self.state.steps = {step.name: step.get_state() for step in self.steps}
        self._update_hall_of_fame(gen.population, gen.fitness, gen.keys)
        gen.record = self._statistics(gen)
        self.state.logbook.append(gen.record)
        self.state.rng_state = self.rng.bit_generator.state
        if self.objectives_count > 1:
            self._update_pareto_front()
        self.run_dir.save_state(self.state)
        self.callbacks.on_generation_end(self, gen)

    def view(self, gen: Generation) -> GenerationView:
        """The narrow, read-only view of ``gen`` that steps decide on."""
        def evaluate(genomes: Sequence[Bits], kind: Kind = Kind.SEARCH,
                     options: Mapping[str, Any] | None = None) -> list[EvalResult]:
            return self.evaluate_results(genomes, gen.generation, kind, options)

        return GenerationView(
            generation=gen.generation, generations=self.cfg.evolution.generations,
            phase=Phase(self.state.phase), population=tuple(gen.population),
            fitness=tuple(gen.fitness), keys=tuple(gen.keys), offspring=tuple(gen.offspring),
            evaluate=evaluate, fitness_of=self.fitness_model.fitness, lookup=self.store.lookup,
            rows=self.store.rows, key_of=self.space.key, final=self.executor.final,
            seed=self.cfg.evolution.seed)

    # ------------------------------------------------------------ evaluation
    def _fitness(self, results: Sequence[EvalResult]) -> list[float]:
        return [self.fitness_model.fitness(r) for r in results]

    def evaluate_results(self, genomes: Sequence[Bits], generation: int, kind: Kind = Kind.SEARCH,
                         options: Mapping[str, Any] | None = None,
                         keys: Sequence[str | None] | None = None) -> list[EvalResult]:
        """Results of each genome: from the store when known, else trained once.

        ``keys`` may name an evaluation key per genome; a named key is used only
        when the store knows it, otherwise the key is derived from the genome.
        """
        keys = [k if k and self.store.lookup(k) is not None else self.task_key(b, options)
                for b, k in zip(genomes, keys or [None] * len(genomes))]
        known: dict[str, EvalResult] = {}
        tasks: dict[str, EvalTask] = {}
        bits_of = dict(zip(keys, genomes))
        for bits, key in zip(genomes, keys):
            if key in known or key in tasks:
                continue
            cached = self.store.lookup(key)
            if cached is not None:
                known[key] = cached
                self.callbacks.on_evaluated(self, cached, True)
            else:
                tasks[key] = EvalTask(key=key, genome=bits_to_str(bits), kind=Kind(kind),
                                      seed=derive_seed(self.cfg.evolution.seed, key),
                                      generation=generation, options=dict(options or {}))
        todo = list(tasks.values())
        left = self.budget_left()
        cut = left is not None and len(todo) > left
        for result in self.executor.run(todo[:left] if cut else todo):
            self.store.add(result, self.fitness_model.fitness(result))
            self.state.trained += 1
            self.state.final_trained += kind == Kind.RESEED
            known[result.key] = result
            self._count_failure(result)
            self.callbacks.on_evaluated(self, result, False)
        if cut:
            raise BudgetSpent([(bits_of[k], r) for k, r in known.items() if r.ok and kind == Kind.SEARCH],
                              generation)
        return [known[k] for k in keys]

    def budget_left(self) -> int | None:
        """Trainings left in ``evolution.max_trainings``; None without a budget.

        While searching, the final candidates' extra seeds are held back, so they
        fit in the same budget (unless they would take half of it or more), and
        only the search's own trainings count: a run stopped by its budget and
        resumed with a larger one searches exactly as a run given the larger
        budget from the start. The earlier final pick's re-trainings then come on
        top (they stay in the store, reused when the same candidates come out).
        """
        ev = self.cfg.evolution
        if not ev.max_trainings:
            return None
        held = ev.final_candidates * ev.final_seeds
        held = held if ev.max_trainings > 2 * held else 0
        spent = self.state.trained - self.state.final_trained
        if self.searching:
            return max(0, ev.max_trainings - held - spent)
        return max(0, ev.max_trainings - spent - (self.state.final_trained - self._final_from))

    def _pick_final(self) -> None:
        """The winner's curse: re-train the best few with extra seeds, pick on the mean.

        One short training is noisy, so the best of many single trainings is mostly
        the luckiest. The best ``final_candidates`` of the hall of fame (pruned
        networks excepted: their evaluation is the pruner's) are trained again with
        ``final_seeds`` other seeds; the one with the smallest mean fitness takes
        the place of the best of them in the hall of fame (a pruned network ranked
        above them keeps its place), and every candidate's errors are kept in the state.
        """
        ev = self.cfg.evolution
        fame = self.state.hall_of_fame
        rows = [self.store.lookup(e["key"]) for e in fame[:ev.final_candidates]]
        chosen = [(e, r) for e, r in zip(fame, rows) if r is not None and r.ok and r.kind != Kind.PRUNE]
        if not ev.final_seeds or not chosen:
            return
        genomes = [str_to_bits(e["genome"]) for e, _ in chosen]
        runs: list[list[EvalResult]] = [[r] for _, r in chosen]
        self._final_from = self.state.final_trained
        try:
            for j in range(1, ev.final_seeds + 1):
                again = self.evaluate_results(genomes, self.state.generation, Kind.RESEED,
                                              {"variant": reseed_variant(j)})
                for k, r in enumerate(again):
                    runs[k].append(r)
        except BudgetSpent:
            return  # no budget left for every seed: the pick stays on single trainings
        final = []
        for (entry, _), results in zip(chosen, runs):
            errors = [r.val_error for r in results if r.ok]
            fits = [self.fitness_model.fitness(r) for r in results]
            final.append({"key": entry["key"], "genome": entry["genome"], "val_errors": errors,
                          "mean_val_error": float(np.mean(errors)) if errors else None,
                          "std_val_error": float(np.std(errors)) if errors else None,
                          "mean_fitness": float(np.mean(fits))})
        final.sort(key=lambda c: (c["mean_fitness"], c["genome"]))
        self.state.final = final
        self.state.hall_of_fame = place_pick_winner(fame, final[0]["key"],
                                                    {e["key"] for e, _ in chosen})

    def reseed_seeds(self, key: str) -> list[int]:
        """The training seeds of the final pick's extra trainings of network ``key``."""
        return [derive_seed(self.cfg.evolution.seed, derived_key(key, reseed_variant(j)))
                for j in range(1, self.cfg.evolution.final_seeds + 1)]

    def task_key(self, bits: Bits, options: Mapping[str, Any] | None = None) -> str:
        """The cache key: the canonical network's, or a variant's own when options name one.

        A pruning attempt (``options["variant"]``) trains the same bits differently,
        so its key is a digest of the network's key and the variant; what the variant
        is stays in the row's fields (kind, options), never inside the key.
        """
        key = self.space.key(bits)
        variant = (options or {}).get("variant")
        return derived_key(key, variant) if variant else key

    def _count_failure(self, result: EvalResult) -> None:
        self.consecutive_failures = 0 if result.ok else self.consecutive_failures + 1
        limit = self.cfg.evolution.max_consecutive_failures
        if self.consecutive_failures >= limit:
            reason = result.message.splitlines()[0] if result.message else "no reason"
            raise FatalError(f"{limit} evaluations failed in a row (last: {reason}); check the data "
                             f"and the search space, then `{resume_command(self.run_dir.path)}`.")

    # ------------------------------------------------------------- operators
    def rates(self, bits: Bits) -> tuple[float, float]:
        """The individual's own (mutation rate, crossover rate): self-adaptive genes."""
        hyper = self.space.hyper(bits)
        return hyper["mutation_rate"], hyper["crossover_rate"]

    def _grow_operator(self) -> Callable[[Bits, np.random.Generator], Bits] | None:
        """Growth mutation while the search grows (Algorithm 1); none once it prunes."""
        ev = self.cfg.evolution
        if not ev.growth or self.state.phase != Phase.GROW:
            return None
        return growth(self.space.active_slice, ev.grow_rate)

    def _mutate(self, bits: Bits, rate: float, rng: np.random.Generator) -> Bits:
        """Mutation that always changes the network (see ``gnas.search.novelty``)."""
        return expressed_mutation(indpb=self.indpb, key_of=self.space.key,
                                  repair=self.space.repair)(bits, rate, rng)

    def _remutate(self, bits: Bits, rng: np.random.Generator) -> Bits:
        """The novelty rule's extra mutation of a duplicate child (growth included)."""
        return remutation(self._mutate, rates=self.rates, repair=self.space.repair,
                          grow=self._grow_operator())(bits, rng)

    @property
    def indpb(self) -> float:
        return self.cfg.evolution.indpb or 1.0 / self.space.length

    def current_fitness(self) -> list[float]:
        return [f[0] if f else self.fitness_model.worst for f in self.state.fitness]

    # ------------------------------------------------------------ bookkeeping
    def _initial_state(self, initial: Callable[[np.random.Generator], InitialPopulation] | None
                       ) -> SearchState:
        ev = self.cfg.evolution
        rng = np.random.default_rng(ev.seed)
        if initial is None:
            raise FatalError("Search: a new search needs an initial population (initial=...).")
        drawn = initial(rng)
        if ev.strategy == Strategy.RANDOM:  # the baseline draws every genome uniformly
            drawn = InitialPopulation([self.space.random_bits(rng) for _ in drawn.genomes],
                                      "random", drawn.lambda_c, drawn.lambda_c_source)
        genomes = distinct_population(drawn.genomes, rng,
                                      mutate=lambda b, r: self._mutate(b, self.rates(b)[0], r),
                                      key_of=self.space.key, tries=ev.novelty_tries)
        return SearchState(generation=-1, population=[bits_to_str(b) for b in genomes],
                           fitness=[None] * len(genomes), rng_state=rng.bit_generator.state,
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

    def _update_pareto_front(self) -> None:
        """The non-dominated (error, complexity) networks of every evaluation so far."""
        measure = self.fitness_model.measure
        self.state.pareto_front = [
            {"key": r["genome_key"], "genome": r["genome"], "val_error": r["val_error"],
             measure: r[measure], "generation": r["generation"]}
            for r in front_of_rows(self.store.rows(), measure)]

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


class BudgetSpent(Exception):
    """The budget of trained networks ran out inside a generation (internal to the loop)."""

    def __init__(self, evaluated: list[tuple[Bits, EvalResult]], generation: int) -> None:
        super().__init__("budget of trained networks spent")
        self.evaluated = evaluated
        self.generation = generation


class _EvaluatedKeys:
    """``key in evaluated``: whether ``key`` was evaluated before generation ``before_generation``.

    Only earlier generations count, so a generation redone after a kill or a
    budget stop sees what it saw the first time, not its own finished trainings.
    """

    def __init__(self, store: EvaluationStore, before_generation: int) -> None:
        self.store = store
        self.before_generation = before_generation

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.store.contains(key, self.before_generation)


def reseed_variant(j: int) -> str:
    """The variant naming the final pick's ``j``-th extra training of a network."""
    return f"seed-{j}"


def derived_key(key: str, variant: str) -> str:
    """The cache key of a variant (e.g. a pruning attempt) of the network ``key``."""
    import hashlib

    return hashlib.sha256(f"{key}\n{variant}".encode()).hexdigest()[:20]
