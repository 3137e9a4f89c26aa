"""Successive halving against full fidelity: the same search, each candidate's epochs spent differently.

Arms (``--arms``): ``ga-full`` (every candidate trains ``train.epochs``), ``ga-sha``
(``--fidelity sha``: rungs of ``fidelity.min_epochs`` .. ``max_epochs``, the best
1/eta go on) and ``random-sha`` (random search with the same rungs: Hyperband-like).
Runs and figures as :mod:`arms` makes them (arms interleaved seed by seed); then
``sha_vs_full: +X.XX pp`` (delivered test) and the epochs ratio.

``--budget-epochs N`` gives every arm the same budget of N epochs in all (final pick
and final trainings included, ``evolution.max_epochs_total``); without it each arm
spends what its schedule spends, printed next to its score.

Run ``python experiments/bench_fidelity.py`` (digits, defaults, seeds 0,1,2: about
8 minutes on 2 cores) or, on Fashion-MNIST, ``--dataset fashion_mnist --set
data.max_train_samples=10000``. Finished runs under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arms import compare, test_gap  # noqa: E402

from gnas.config import parse_set  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = parse_set(args.overrides)
    if args.budget_epochs:
        overrides["evolution.max_epochs_total"] = args.budget_epochs
    arms = {a: ARMS[a] for a in args.arms.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    found = compare(arms, args.dataset, seeds, overrides, Path(args.out))
    if "ga-full" in found and "ga-sha" in found:
        full, sha = found["ga-full"], found["ga-sha"]
        print(f"epochs_sha_over_full: {np.mean(sha['epochs']) / np.mean(full['epochs']):.2f}")
        print(f"sha_vs_full: {test_gap(found, 'ga-sha', 'ga-full'):+.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
