"""gnas's strategies against the peers on NAS-Bench-201, by the benchmark's own protocol.

Arms: gnas's GA with its defaults (``ga``), the GA from uniform bits
(``ga-random-init``), gnas's aging evolution (``aging``) and random search
(``random``), each through ``gnas.evolve(space="nb201", ...)``; and the peers of
``experiments/nb201_peers.py`` run on the table directly (RS and REA as the
benchmark's scripts run them, Optuna TPE multivariate and independent, local
search, a DEAP GA). Protocol: see ``nb201_peers`` (12,000 simulated seconds; one
seed's accuracy per query; the pick is the best observed, reported as its mean
over seeds). A gnas arm runs once with ``--budget-seconds 12000`` and once per
query count (100, 200, 500) with ``--budget N``; its pick is gnas's own.

Per arm: mean ± std of the pick's mean accuracy, queries, median rank of the pick,
share of runs whose pick is the best cell; at 12,000 s and at 100/200/500 queries.
Last lines: ``ga_vs_best_peer: +X.XX pp`` (gnas's GA minus the best peer at
12,000 s) and ``aging_vs_paper_rea: +X.XX pp`` (gnas's aging minus the published
REA, 91.20). ``python experiments/bench_nb201.py [--runs N] [--dataset D]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nb201_peers as peers  # noqa: E402

PAPER_REA = 91.20
GNAS_ARMS: dict[str, dict[str, Any]] = {
    "ga": {},
    "ga-random-init": {"evolution.init": "random"},
    # Regularized evolution as Real et al. and NAS-Bench-201's R_EA.py run it: a population of
    # 10 from uniform cells, one child per step from a sample of 3, the oldest dies.
    "aging": {"evolution.strategy": "aging", "evolution.aging_children": 1, "evolution.population": 10,
              "evolution.tournament": 3, "evolution.init": "random"},
    "random": {"evolution.strategy": "random"},
}


def gnas_run(job: tuple[str, int, str, str]) -> dict[str, Any]:
    """One gnas run of an arm in one setting (``budget`` or ``qN``): its pick."""
    import gnas

    arm, seed, dataset, setting = job
    config = {**GNAS_ARMS[arm], "evolution.seed": seed, "evolution.generations": 1_000_000}
    if setting == "budget":
        config["evolution.max_eval_seconds"] = peers.BUDGET_SECONDS
    else:
        config["evolution.max_trainings"] = int(setting[1:])
    with tempfile.TemporaryDirectory() as tmp:
        result = gnas.evolve(space="nb201", dataset=dataset, run_dir=Path(tmp) / "run", config=config)
    s = result.summary["nb201"]
    table = peers.table_for(dataset)
    cell = peers.cell_index([int(c) for c in s["key"]])
    return {"cell": cell, "observed": s["observed_acc"], "mean": float(table.mean[cell]),
            "rank": int(table.rank[cell]), "queries": s["queries"]}


def run_gnas_arm(arm: str, runs: int, dataset: str, cache: Path) -> list[dict[str, Any]]:
    path = cache / f"{dataset}-gnas-{arm}.json"
    done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    jobs = [(arm, s, dataset, st) for s in range(runs) for st in peers.SETTINGS
            if f"{s}/{st}" not in done]
    if jobs:
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            fresh = pool.map(gnas_run, jobs, chunksize=max(1, len(jobs) // 40))
        done.update({f"{j[1]}/{j[3]}": r for j, r in zip(jobs, fresh)})
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, sort_keys=True))
    return [{st: done[f"{s}/{st}"] for st in peers.SETTINGS} for s in range(runs)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--dataset", default="cifar10", choices=sorted(peers.TABLE_NAMES))
    p.add_argument("--out", type=Path, default=Path("runs/bench_nb201"),
                   help="each run's pick is kept here and reused when run again")
    args = p.parse_args(argv)
    table = peers.table_for(args.dataset)
    print(f"NAS-Bench-201 {args.dataset}: best cell {peers.arch_str(table.best)} "
          f"{table.mean[table.best]:.2f}; {args.runs} runs per arm")
    print(peers.header())
    summaries: dict[str, dict[str, dict[str, float]]] = {}
    for arm in GNAS_ARMS:
        t0 = time.perf_counter()
        summaries[arm] = peers.summarise(run_gnas_arm(arm, args.runs, args.dataset, args.out), table.best)
        print(peers.format_row(f"gnas {arm}", summaries[arm]), f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    for arm in peers.SEARCHES:
        t0 = time.perf_counter()
        res = peers.run_arm(arm, args.runs, args.dataset, cache=args.out / "peers")
        summaries[f"peer {arm}"] = peers.summarise(res, table.best)
        print(peers.format_row(f"peer {arm}", summaries[f"peer {arm}"]),
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    best_peer = max(v["budget"]["mean"] for k, v in summaries.items() if k.startswith("peer "))
    print(f"ga_vs_best_peer: {summaries['ga']['budget']['mean'] - best_peer:+.2f} pp")
    print(f"aging_vs_paper_rea: {summaries['aging']['budget']['mean'] - PAPER_REA:+.2f} pp")


if __name__ == "__main__":
    main()
