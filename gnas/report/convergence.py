"""Generations to convergence of a run: the paper's chain, the operators' chain, the observed.

``gnas markov --json`` reports, per run, ``predicted_convergence`` from the
Wright-Fisher chain (the paper's model, :mod:`gnas.markov.chain`) and from the
chain of gnas' own operators (:mod:`gnas.markov.kernel`), both taken from the
initial population (generation 0) and its measured fitness, next to
``observed_convergence`` (:data:`gnas.markov.chain.CONVERGENCE_DEFINITION`).
All three are in generations.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from gnas.competition.scoreboard import crossover_of
from gnas.config import RunConfig
from gnas.genome.space import Bits, SearchSpace, str_to_bits
from gnas.markov import kernel
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore
from gnas.search.novelty import mut_expressed
from gnas.search.operators import growth


def run_variation(cfg: RunConfig, space: SearchSpace) -> kernel.Variation:
    """The variation a single-objective search with ``cfg`` runs while it grows.

    The same arguments as the search loop passes to
    :func:`gnas.search.operators.vary`: elitism, tournament, the individual's own
    rates, per-bit probability, repair, the crossover that goes with the
    competition setting, growth's mutation when growth is on, and the mutation
    that always changes the network. The novelty rule's re-mutation of a child
    already trained is not in the forecast: it depends on the run's history.
    """
    ev = cfg.evolution

    def rates(bits: Bits) -> tuple[float, float]:
        hyper = space.hyper(bits)
        return hyper["mutation_rate"], hyper["crossover_rate"]

    indpb = ev.indpb or 1.0 / space.length

    def mutate(bits: Bits, rate: float, rng: np.random.Generator) -> Bits:
        return mut_expressed(bits, rng, rate=rate, indpb=indpb, key_of=space.key, repair=space.repair)

    grow = growth(space.active_slice, ev.grow_rate) if ev.growth else None
    return kernel.search_variation(
        elite=ev.elite, tournsize=ev.tournament, rates=rates, indpb=indpb,
        repair=space.repair, crossover=crossover_of(space, ev.competition),
        grow=grow, mutate=mutate)


def full_population(run_dir: RunDir, record: dict[str, np.ndarray]) -> list[Bits] | None:
    """The whole chromosomes of a Markov record's population, from the evaluation store.

    A record keeps only the connection genes; the genomes evaluated in its
    generation with the same connection genes supply the rest. An individual that
    was read from the cache (the same network as another genome, so no row of its
    own) takes the other genes of the genome whose evaluation it shares (equal
    fitness) with its own connection genes. None when neither is found.
    """
    g, l = int(record["generation"]), int(record["l"])
    store = EvaluationStore(run_dir.db_path)
    try:
        rows = [r for r in store.rows() if r.get("generation") == g and r.get("genome")]
    finally:
        store.close()
    by_prefix: dict[str, str] = {}
    for r in rows:
        by_prefix.setdefault(r["genome"][:l], r["genome"])
    out = []
    for row, fit in zip(np.asarray(record["population_bits"], dtype=int), record["fitness"]):
        prefix = "".join(str(b) for b in row)
        genome = by_prefix.get(prefix)
        if genome is None:
            same = [r["genome"] for r in rows if r.get("fitness") is not None
                    and math.isclose(float(r["fitness"]), float(fit), rel_tol=1e-12)]
            if not same:
                return None
            genome = prefix + same[0][l:]
        out.append(str_to_bits(genome))
    return out


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def convergence_summary(run_dir: RunDir, records: Sequence[dict[str, np.ndarray]],
                        space: SearchSpace, observed: int | None) -> dict[str, Any]:
    """``predicted_convergence: {wright_fisher, operators}`` and ``observed_convergence``."""
    first = min(records, key=lambda r: int(r["generation"]))
    cfg = run_dir.load_config()
    population = full_population(run_dir, first)
    operators = None
    if population is not None:
        fitness = np.nan_to_num(np.asarray(first["fitness"], dtype=float), nan=np.inf)
        operators = kernel.predicted_convergence(population, fitness.tolist(), run_variation(cfg, space),
                                                 int(first["l"]), seed=cfg.evolution.seed)
    return {
        "predicted_convergence": {
            "wright_fisher": _finite(first["predicted_generations_to_absorption"]),
            "operators": _finite(operators) if operators is not None else None,
        },
        "predicted_from_generation": int(first["generation"]),
        "observed_convergence": observed,
        "models": {"wright_fisher": "the paper's model (eq. 4-6): expected generations to fixation",
                   "operators": "gnas' variation and measured selection: generations until the "
                                f"state distribution is within {kernel.MIXING_TOL} (total variation) "
                                "of its stationary distribution"},
    }


def for_run(run_dir: RunDir) -> dict[str, Any]:
    """:func:`convergence_summary` of a finished run, its search space rebuilt from its config."""
    from gnas.datasets import load_for_run
    from gnas.genome.factory import make_space
    from gnas.report import analysis

    records = analysis.markov_records(run_dir)
    observed = analysis.markov_summary(run_dir, records)["observed_generations_to_convergence"]
    cfg = run_dir.load_config()
    return convergence_summary(run_dir, records, make_space(cfg, load_for_run(cfg)), observed)


def format_convergence(summary: dict[str, Any]) -> str:
    """The three numbers of :func:`convergence_summary` as text, the models named."""
    pred = summary["predicted_convergence"]
    return "\n".join([
        f"generations to convergence, predicted from generation {summary['predicted_from_generation']}:",
        f"  Wright-Fisher (paper's model): {pred['wright_fisher']}",
        f"  operators' chain (gnas):       {pred['operators']}",
        f"  observed:                      {summary['observed_convergence']}",
    ])
