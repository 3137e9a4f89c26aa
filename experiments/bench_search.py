"""GA vs random search vs aging evolution at an equal budget of trained networks.

Question: does gnas' GA find better networks than the baselines it reports itself
against, when every strategy may train the same number of networks? Four arms run
through the real engine (``gnas.session``), each with ``--budget`` trainings
(the final candidates' extra seeds included):

* ``ga-coe``: the paper's GA, initial population at the edge of chaos;
* ``ga-random``: the same GA from uniform bits;
* ``random``: uniform genomes of the same space (``--strategy random``);
* ``aging``: regularized evolution (``--strategy aging``).

Printed per arm: mean ± std over seeds of the best validation error (of the
final pick, mean over its seeds) and of the test score of the final network,
the final network's test score over its training seeds (mean of each run's
``test_scores``, and the std within a run), distinct networks trained per
non-elite slot (trained / (trained + reused)), and wall time; the last line is
``ga_vs_random: +X.X pp``, the mean test-score difference of ``ga-coe`` over
``random`` on the data set run.

Run ``python experiments/bench_search.py`` (digits, budget 40, 3 seeds, 2 epochs);
``--dataset fashion_mnist --max-train-samples 10000 --epochs 2 --seeds 0,1`` is
the Fashion-MNIST comparison (about an hour on 2 cores). Finished runs under
``--out`` are reused when run again.
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
from gnas.runs.directory import RunDir

ARMS: dict[str, dict[str, Any]] = {
    "ga-coe": {"evolution.strategy": "ga", "evolution.init": "coe"},
    "ga-random": {"evolution.strategy": "ga", "evolution.init": "random"},
    "random": {"evolution.strategy": "random"},
    "aging": {"evolution.strategy": "aging"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default="")
    p.add_argument("--budget", type=int, default=40, help="trained networks per run")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-train-samples", type=int, default=0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--lambda-c", type=float, default=-1.0, help="-1: measure it per run")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every arm, e.g. evolution.tournament=5 (repeatable)")
    p.add_argument("--out", default="runs/bench_search")
    return p.parse_args(argv)


def variant_name(args: argparse.Namespace) -> str:
    """The directory part naming the ``--set`` overrides, so variants never share runs."""
    return "".join(f"-{item.replace('=', '_')}" for item in sorted(args.set))


def run_arm(args: argparse.Namespace, arm: str, seed: int) -> dict[str, Any]:
    """One run (or its finished directory) -> its figures."""
    path = Path(args.out) / args.dataset / f"{arm}{variant_name(args)}-seed{seed}"
    took_path = path / "bench_wall_s.json"
    if not took_path.exists():
        overrides = {"data.dataset": args.dataset, "data.data_dir": args.data_dir,
                     "data.max_train_samples": args.max_train_samples,
                     "evolution.population": args.population, "evolution.generations": 100000,
                     "evolution.max_trainings": args.budget, "evolution.seed": seed,
                     "evolution.lambda_c": args.lambda_c, "train.epochs": args.epochs,
                     **parse_set(args.set), **ARMS[arm]}
        start = time.perf_counter()
        session.start(load_config(overrides=overrides), path, out=io.StringIO())
        took_path.write_text(json.dumps(time.perf_counter() - start))
    summary = json.loads((path / "best" / "summary.json").read_text())
    if "test_scores" not in summary:  # finished before test scores over seeds were kept
        session.resume(path, {}, out=io.StringIO())
        summary = json.loads((path / "best" / "summary.json").read_text())
    state = RunDir(path).load_state(warn=lambda m: None)
    pick = state.final[0]["mean_val_error"] if state.final else summary["val_error"]
    seeds = summary.get("test_scores") or [summary["test_score"]]
    return {"val_error": pick, "test_score": summary["test_score"], "trained": state.trained,
            "test_over_seeds": float(np.mean(seeds)), "seed_std": float(np.std(seeds)),
            "distinct": (state.trained and 1.0 - state.reused / (state.trained + state.reused)),
            "wall_s": json.loads(took_path.read_text())}


def pm(values: list[float], fmt: str = ".4f") -> str:
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    scores: dict[str, list[float]] = {}
    print(f"{args.dataset}: budget {args.budget} trained networks, population {args.population}, "
          f"{args.epochs} epochs, max_train_samples {args.max_train_samples or 'all'}, seeds {seeds}"
          + (f", set {' '.join(args.set)}" if args.set else ""))
    for arm in args.arms.split(","):
        rows = [run_arm(args, arm, s) for s in seeds]
        scores[arm] = [r["test_score"] for r in rows]
        print(f"{arm:<10} best val error {pm([r['val_error'] for r in rows])}  "
              f"test score {pm(scores[arm], '.2f')}  "
              f"over seeds {pm([r['test_over_seeds'] for r in rows], '.2f')} "
              f"(within-run std {np.mean([r['seed_std'] for r in rows]):.2f})  "
              f"distinct/slot {np.mean([r['distinct'] for r in rows]):.3f}  "
              f"trained {np.mean([r['trained'] for r in rows]):.0f}  "
              f"wall {np.mean([r['wall_s'] for r in rows]):.0f} s/run", flush=True)
    if "ga-coe" in scores and "random" in scores:
        print(f"ga_vs_random: {np.mean(scores['ga-coe']) - np.mean(scores['random']):+.1f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
