"""Successive halving against full fidelity: the same search, each candidate's epochs spent differently.

Arms (``--arms``): ``ga-full`` (every candidate trains ``train.epochs``), ``ga-sha``
(``--fidelity sha``: rungs of ``fidelity.min_epochs`` .. ``max_epochs``, the best
1/eta go on) and ``random-sha`` (random search with the same rungs: Hyperband-like).
For every seed the arms run one after another (interleaved seed by seed, so machine
load falls on all alike), each a complete ``gnas evolve`` with the final training to
convergence. Printed per arm: best search validation error, the delivered model's
test score over its final seeds (mean ± std over seeds and runs), epochs spent (search
trainings, promotions counted by the epochs they add, re-trainings and final
trainings), and wall seconds; then ``sha_vs_full: +X.XX pp`` (delivered test) and the
epochs ratio.

``--budget-epochs N`` gives every arm the same budget of N epochs in all (final pick
and final trainings included, ``evolution.max_epochs_total``); without it each arm
spends what its schedule spends, printed next to its score.

Run ``python experiments/bench_fidelity.py`` (digits, defaults, seeds 0,1,2: about
8 minutes on 2 cores) or, on Fashion-MNIST, ``--dataset fashion_mnist --set
data.max_train_samples=10000``. Finished runs under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from gnas import session
from gnas.config import load_config, parse_set
from gnas.runs.store import EvaluationStore
from gnas.search.fidelity import epochs_trained

ARMS: dict[str, dict[str, Any]] = {
    "ga-full": {"fidelity.schedule": "full"},
    "ga-sha": {"fidelity.schedule": "sha"},
    "random-sha": {"fidelity.schedule": "sha", "evolution.strategy": "random"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default="ga-full,ga-sha,random-sha")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="a config override for every arm, e.g. evolution.generations=5")
    p.add_argument("--budget-epochs", type=int, default=0,
                   help="the same epoch budget for every arm (evolution.max_epochs_total)")
    p.add_argument("--out", default="runs/bench_fidelity")
    return p.parse_args(argv)


def run(arm: str, dataset: str, seed: int, overrides: dict[str, Any], out: Path) -> tuple[Path, float]:
    """One arm's complete search (or its finished directory) and its wall seconds."""
    path = out / f"{dataset}-{arm}-seed{seed}"
    took = path / "bench_wall_s.json"
    if not took.exists():
        cfg = load_config(overrides={"data.dataset": dataset, "evolution.seed": seed,
                                     **overrides, **ARMS[arm]})
        start = time.perf_counter()
        session.start(cfg, path, out=io.StringIO(), progress=False)
        took.write_text(json.dumps(time.perf_counter() - start))
    return path, json.loads(took.read_text())


def epochs_spent(path: Path, default_epochs: int) -> int:
    """Every epoch the run trained: its stored trainings (a promotion by what it adds) and final trainings."""
    store = EvaluationStore(path / "evaluations.db", read_only=True)
    try:
        search = epochs_trained(store.iter_results(), default_epochs)["epochs"]
    finally:
        store.close()
    summary = json.loads((path / "best" / "summary.json").read_text())
    return search + sum(summary.get("final_epochs") or [])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = parse_set(args.overrides)
    if args.budget_epochs:
        overrides["evolution.max_epochs_total"] = args.budget_epochs
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    found: dict[str, dict[str, list[float]]] = {a: {"val": [], "test": [], "epochs": [], "wall": []}
                                               for a in arms}
    for seed in seeds:
        for arm in arms:  # interleaved
            path, wall = run(arm, args.dataset, seed, overrides, Path(args.out))
            summary = json.loads((path / "best" / "summary.json").read_text())
            cfg = load_config(overrides={"data.dataset": args.dataset, **overrides, **ARMS[arm]})
            tests = summary.get("test_scores") or [summary["test_score"]]
            spent = epochs_spent(path, cfg.train.epochs)
            found[arm]["val"].append(summary["val_error"])
            found[arm]["test"] += tests
            found[arm]["epochs"].append(spent)
            found[arm]["wall"].append(wall)
            print(f"seed {seed} {arm:<10} search val error {summary['val_error']:.4f}  "
                  f"delivered test {np.mean(tests):.2f}  epochs {spent}  {wall:.0f} s", flush=True)
    for arm in arms:
        f = found[arm]
        print(f"{arm:<10} best val error {np.mean(f['val']):.4f} ± {np.std(f['val']):.4f}  "
              f"test {np.mean(f['test']):.2f} ± {np.std(f['test']):.2f} (n={len(f['test'])})  "
              f"epochs {np.mean(f['epochs']):.0f}  wall {np.mean(f['wall']):.0f} s")
    if "ga-full" in found and "ga-sha" in found:
        full, sha = found["ga-full"], found["ga-sha"]
        print(f"epochs_sha_over_full: {np.mean(sha['epochs']) / np.mean(full['epochs']):.2f}")
        print(f"sha_vs_full: {np.mean(sha['test']) - np.mean(full['test']):+.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
