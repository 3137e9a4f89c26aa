"""Successive halving against full fidelity: the same search, each candidate's epochs spent differently.

Arms (``--arms``): ``ga-full`` (every candidate trains ``train.epochs``), ``ga-sha``
(``--fidelity sha``: rungs of ``fidelity.min_epochs`` .. ``max_epochs``, the best
1/eta go on), ``random-sha`` (random search with the same rungs: Hyperband-like)
and ``optuna-sha``, the peer (:mod:`optuna_peer`: Optuna's TPE sampler and
successive-halving pruner over the same genome bits and rungs, its best network
given gnas's final training; needs ``pip install optuna``). Runs and figures as
:mod:`arms` makes them (arms interleaved seed by seed); then ``sha_vs_full:
+X.XX pp`` and ``vs_optuna_sha: +X.XX pp`` (GA + SHA minus the peer; delivered
test), the epochs ratio, and per arm the search epochs it took to first score
``ga-full``'s best validation error of the same seed, against ``ga-full``'s own.

``--budget-epochs N`` gives every arm the same budget of N epochs in all (final pick
and final trainings included, ``evolution.max_epochs_total``); without it each arm
spends what its schedule spends, printed next to its score. The peer's study gets
the budget less what gnas holds back for its final trainings (it has no final
pick, so it searches that share too); without a budget, as many search epochs as
the same seed's ``ga-full`` run spent (``ga-full`` then runs first).

Run ``python experiments/bench_fidelity.py`` (digits, defaults, seeds 0,1,2: about
13 minutes on 2 cores) or, on Fashion-MNIST at an equal budget, ``--dataset
fashion_mnist --set data.max_train_samples=10000 --budget-epochs 80 --set
final.max_epochs=6 --set final.patience=2 --set evolution.final_candidates=1`` (the
final trainings must fit in the budget). Finished runs under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arms import compare, reach, reach_text, results, run_dir, test_gap  # noqa: E402

from gnas.config import RunConfig, load_config, parse_set  # noqa: E402
from gnas.search.fidelity import epochs_held, epochs_trained  # noqa: E402

ARMS: dict[str, dict[str, Any]] = {
    "ga-full": {"fidelity.schedule": "full"},
    "ga-sha": {"fidelity.schedule": "sha"},
    "random-sha": {"fidelity.schedule": "sha", "evolution.strategy": "random"},
    "optuna-sha": {"fidelity.schedule": "sha"},
}
PEER = "optuna-sha"


def peer_search_epochs(cfg: RunConfig, path: Path) -> int:
    """The peer's study budget: the run's epoch budget less the final trainings' share, or
    without one what the same seed's ``ga-full`` run trained before its final trainings."""
    if cfg.evolution.max_epochs_total:
        return cfg.evolution.max_epochs_total - epochs_held(cfg)[1]
    full = run_dir(path.parent, cfg.data.dataset, "ga-full", cfg.evolution.seed)
    if not (full / "best" / "summary.json").is_file():
        raise SystemExit(f"{PEER} without --budget-epochs spends what ga-full spent: run it with ga-full "
                         f"first in --arms, or give --budget-epochs.")
    return epochs_trained(results(full), cfg.train.epochs)["epochs"]  # search and final pick


def peer(arm: str, cfg: RunConfig, path: Path) -> None:
    """The Optuna study and its delivered model, in ``path``."""
    from optuna_peer import run_peer

    run_peer(cfg, path, peer_search_epochs(cfg, path))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default="ga-full,ga-sha,random-sha,optuna-sha")
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
    if PEER in arms and importlib.util.find_spec("optuna") is None:
        raise SystemExit(f"the {PEER} arm needs Optuna: pip install optuna, or leave {PEER} out of --arms.")
    seeds = [int(s) for s in args.seeds.split(",")]
    found = compare(arms, args.dataset, seeds, overrides, Path(args.out), runners={PEER: peer})
    if "ga-full" in found:
        for arm in (a for a in found if a != "ga-full"):
            epochs = load_config(overrides={"data.dataset": args.dataset, **overrides, **ARMS[arm]}).train.epochs
            reached, full_reached = reach(found, arm, "ga-full", epochs)
            pairs = [(r, f) for r, f in zip(reached, full_reached) if r is not None and f]
            # summed over the seeds where both reached it: one lucky early hit does not dominate
            ratio = (f"{sum(r for r, _ in pairs) / sum(f for _, f in pairs):.2f} of ga-full's epochs"
                     if pairs else "never")
            print(f"{reach_text(arm, 'ga-full', reached, full_reached)}: {ratio}")
    if "ga-full" in found and "ga-sha" in found:
        full, sha = found["ga-full"], found["ga-sha"]
        print(f"epochs_sha_over_full: {np.mean(sha['epochs']) / np.mean(full['epochs']):.2f}")
        print(f"sha_vs_full: {test_gap(found, 'ga-sha', 'ga-full'):+.2f} pp")
    if "ga-sha" in found and PEER in found:
        print(f"vs_optuna_sha: {test_gap(found, 'ga-sha', PEER):+.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
