"""Generations to convergence of a run: the paper's chain, the operators' chain, the observed.

``gnas markov --json`` reports, per run, ``predicted_convergence`` from the
Wright-Fisher chain (the paper's model, :mod:`gnas.markov.chain`: expected
generations to fixation) and from the chain of gnas' own operators
(:mod:`gnas.markov.kernel`, the novelty rule included, with selection between
states by the run's tournament and elites, :mod:`gnas.markov.selection`), both
built on the initial population (generation 0) and its measured fitness, next to
``observed_convergence``. The operators' forecast and the observed figure share
one definition (:data:`gnas.markov.settling.STATE_CONVERGENCE_DEFINITION`: the
generation at which the mean state of the connection genes reaches its plateau),
so their ratio is the model's error alone; ``wright_fisher_settling`` is the
paper's chain under that same definition. The paper's Table II figure, the last
improvement of the best fitness (:data:`gnas.markov.chain.CONVERGENCE_DEFINITION`),
is reported beside them as ``observed_best_fitness_convergence``: no chain on
states forecasts it. All figures are in generations.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from gnas.competition.scoreboard import crossover_of
from gnas.config import RunConfig
from gnas.genome.space import Bits, SearchSpace, str_to_bits
from gnas.markov import kernel, selection, settling
from gnas.records import Kind, Operator
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore
from gnas.search.novelty import expressed_mutation, remutation
from gnas.search.operators import growth
from gnas.search.variation import neighbour_of

MUTATED = (str(Operator.MUTATION), str(Operator.CROSSOVER_MUTATION))
"""Lineage labels of children that a mutation changed (the novelty rule's re-mutations included)."""


def run_variation(cfg: RunConfig, space: SearchSpace, evaluated: frozenset[str] = frozenset()
                  ) -> kernel.Variation:
    """The variation a single-objective search with ``cfg`` runs while it grows.

    The same arguments as the search loop passes to
    :func:`gnas.search.operators.vary`: elitism, tournament, the individual's own
    rates, per-bit probability, repair, the crossover that goes with the
    competition setting, growth's mutation when growth is on, and the mutation
    that always changes the network; then the novelty rule with the loop's
    re-mutation (own rate, growth) against the networks in ``evaluated`` and the
    new population. Networks the run will train later are not known here.
    """
    ev = cfg.evolution
    # The forecast varies the same few parents thousands of times, and finding a
    # genome's expressed genes decodes every one-gene flip of it: key and repair
    # are pure functions of the bits, so their values are kept.
    key_of, repair = functools.lru_cache(maxsize=None)(space.key), functools.lru_cache(maxsize=None)(space.repair)

    @functools.lru_cache(maxsize=None)
    def rates(bits: Bits) -> tuple[float, float]:
        hyper = space.hyper(bits)
        return hyper["mutation_rate"], hyper["crossover_rate"]

    indpb = ev.indpb or 1.0 / space.length
    mutate = expressed_mutation(indpb=indpb, key_of=key_of, repair=repair, neighbour=neighbour_of(space))
    grow = growth(space.active_slice, ev.grow_rate) if ev.growth else None
    remutate = remutation(mutate, rates=rates, repair=repair, grow=grow)

    variation = kernel.search_variation(
        elite=ev.elite, tournsize=ev.tournament, rates=rates, indpb=indpb,
        repair=repair, crossover=crossover_of(space, ev.competition),
        grow=grow, mutate=mutate)
    if ev.novelty_tries == 0:
        return variation
    return kernel.with_novelty(variation, key_of=key_of, remutate=remutate,
                               evaluated=evaluated, tries=ev.novelty_tries)


def evaluated_keys(run_dir: RunDir, generation: int) -> frozenset[str]:
    """Keys of the networks the run had evaluated by the end of ``generation``."""
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        return frozenset(store.keys_through(generation))
    finally:
        store.close()


def full_population(run_dir: RunDir, record: dict[str, np.ndarray]) -> list[Bits] | None:
    """The whole chromosomes of a Markov record's population, from the evaluation store.

    A record keeps only the connection genes; the genomes evaluated in its
    generation with the same connection genes supply the rest. An individual that
    was read from the cache (the same network as another genome, so no row of its
    own) takes the other genes of the genome whose evaluation it shares (equal
    fitness) with its own connection genes. None when neither is found.
    """
    g, l = int(record["generation"]), int(record["l"])
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        rows = store.genome_fitness(generation=g)
    finally:
        store.close()
    by_prefix: dict[str, str] = {}
    for genome, _ in rows:
        by_prefix.setdefault(genome[:l], genome)
    out = []
    for row, fit in zip(np.asarray(record["population_bits"], dtype=int), record["fitness"]):
        prefix = "".join(str(b) for b in row)
        genome = by_prefix.get(prefix)
        if genome is None:
            same = [other for other, f in rows if f is not None
                    and math.isclose(float(f), float(fit), rel_tol=1e-12)]
            if not same:
                return None
            genome = prefix + same[0][l:]
        out.append(str_to_bits(genome))
    return out


def state_fitness(run_dir: RunDir, l: int, through: int | None = None) -> selection.StateFitness | None:
    """Fitness per state from the run's search evaluations (up to generation ``through``, or all).

    None when the run has none.
    """
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        rows = store.genome_fitness(through=through, kind=str(Kind.SEARCH))
    finally:
        store.close()
    rows = [(g, f) for g, f in rows if len(g) >= l]
    if not rows:
        return None
    return selection.StateFitness.from_evaluations(
        [kernel.state(g, l) for g, _ in rows], [math.inf if f is None else float(f) for g, f in rows], l)


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def observed_settling(records: Sequence[dict[str, np.ndarray]]) -> int | None:
    """:func:`gnas.markov.settling.settling_generation` of the recorded populations.

    None unless the records are the generations 0, 1, ..., G without a gap.
    """
    ordered = sorted(records, key=lambda r: int(r["generation"]))
    if [int(r["generation"]) for r in ordered] != list(range(len(ordered))):
        return None
    return settling.settling_generation(settling.mean_states([r["population_bits"] for r in ordered]))


def mutated_share(records: Sequence[dict[str, np.ndarray]]) -> float | None:
    """Share of the run's counted moves (generations >= 1) that a mutation changed."""
    labels = [str(x) for r in records if int(r["generation"]) > 0 for x in r["operators"]]
    return sum(x in MUTATED for x in labels) / len(labels) if labels else None


def convergence_summary(run_dir: RunDir, records: Sequence[dict[str, np.ndarray]],
                        space: SearchSpace, observed: int | None) -> dict[str, Any]:
    """``predicted_convergence: {wright_fisher, operators, ...}`` and ``observed_convergence``.

    ``observed`` is the best-fitness convergence (Table II), reported as
    ``observed_best_fitness_convergence``.
    """
    first = min(records, key=lambda r: int(r["generation"]))
    g0, l = int(first["generation"]), int(first["l"])
    horizon = max(int(r["generation"]) for r in records) - g0
    cfg = run_dir.load_config()
    start = np.asarray(first["population_bits"], dtype=int).sum(axis=1)
    population = full_population(run_dir, first)
    operators = uniform = hindsight = mixing = forecast_share = None
    if population is not None:
        ev = cfg.evolution
        fitness = np.nan_to_num(np.asarray(first["fitness"], dtype=float), nan=np.inf).tolist()
        variation = run_variation(cfg, space, evaluated_keys(run_dir, g0))
        P, _, moves, _ = kernel.operator_matrices(population, fitness, variation, l, seed=ev.seed)
        uniform = settling.simulated_settling(P, start, horizon, seed=ev.seed)
        mixing = kernel.mixing_generations(P, kernel.state_distribution(population, l))
        selected = functools.partial(selection.simulated_settling, moves, start, fitness,
                                     generations=horizon, elite=ev.elite, tournsize=ev.tournament,
                                     seed=ev.seed)
        known, everything = state_fitness(run_dir, l, through=g0), state_fitness(run_dir, l)
        operators = selected(known) if known is not None else None
        hindsight = selected(everything) if everything is not None else None
        shares = kernel.operator_shares(population, fitness, variation, rounds=kernel.ROUNDS // 4,
                                        seed=cfg.evolution.seed)
        moves = {k: v for k, v in shares.items() if k != str(Operator.ELITE)}
        forecast_share = sum(v for k, v in moves.items() if k in MUTATED) / sum(moves.values())
    return {
        "predicted_convergence": {
            "wright_fisher": _finite(first["predicted_generations_to_absorption"]),
            "operators": _finite(operators),
            "operators_without_selection": _finite(uniform),
            "operators_hindsight": _finite(hindsight),
            "wright_fisher_settling": _finite(settling.simulated_settling(
                first["theoretical"], start, horizon, seed=cfg.evolution.seed)),
            "operators_mixing": _finite(mixing),
        },
        "predicted_from_generation": g0,
        "observed_convergence": observed_settling(records),
        "observed_best_fitness_convergence": observed,
        "mutated_share": {"run": _finite(mutated_share(records)), "forecast": _finite(forecast_share)},
        "definition": settling.STATE_CONVERGENCE_DEFINITION,
        "models": {"wright_fisher": "the paper's model (eq. 4-6): expected generations to fixation",
                   "operators": "gnas' variation and novelty rule, and selection between states (the "
                                "run's tournament and elites on a fitness per state from the evaluations "
                                "known at the forecast generation): the generation at which the mean "
                                "state settles (definition), median of simulated runs",
                   "operators_without_selection": "the same chain with every parent drawn uniformly "
                                                  "(selection only inside its rows)",
                   "operators_hindsight": "operators with the fitness per state taken from all the run's "
                                          "evaluations: the model's error when the landscape is known",
                   "wright_fisher_settling": "the paper's chain under the same definition as operators",
                   "operators_mixing": "generations until the operators' state distribution is within "
                                       f"{kernel.MIXING_TOL} (total variation) of its stationary one",
                   "observed_best_fitness_convergence": "the last improvement of the best fitness "
                                                        "(Table II); no state chain forecasts it"},
    }


def for_run(run_dir: RunDir, upto: int | None = None) -> dict[str, Any]:
    """:func:`convergence_summary` of a run, its search space rebuilt from its config.

    ``upto`` judges the run as it stood after that generation (runs compared at
    a common horizon); None takes every recorded generation.
    """
    from gnas.genome.factory import space_for_run
    from gnas.markov import chain
    from gnas.report import analysis

    records = [r for r in analysis.markov_records(run_dir) if upto is None or int(r["generation"]) <= upto]
    best = analysis.best_per_generation(run_dir)
    observed = chain.observed_generations_to_convergence(best if upto is None else best[:upto + 1])
    cfg = run_dir.load_config()
    return convergence_summary(run_dir, records, space_for_run(cfg), observed)


def format_convergence(summary: dict[str, Any]) -> str:
    """The figures of :func:`convergence_summary` as text, the models named."""
    pred = summary["predicted_convergence"]
    share = summary["mutated_share"]
    return "\n".join([
        f"generations to convergence, predicted from generation {summary['predicted_from_generation']}:",
        f"  Wright-Fisher (paper's model, fixation):      {pred['wright_fisher']}",
        f"  operators' chain (gnas), mean state settles:  {pred['operators']}",
        f"    without selection between states:           {pred['operators_without_selection']}",
        f"    fitness per state from the whole run:       {pred['operators_hindsight']}",
        f"  Wright-Fisher, mean state settles:            {pred['wright_fisher_settling']}",
        f"  observed, mean state settles:                 {summary['observed_convergence']}",
        f"  observed, last best-fitness improvement:      {summary['observed_best_fitness_convergence']}",
        f"  share of moves mutated: run {share['run']}, forecast {share['forecast']}",
    ])
