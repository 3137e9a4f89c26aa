"""Weight inheritance against training every child from scratch (seed 004's question for this search).

Arms (``--arms``): ``none`` (every child from its own initialisation), ``parent``
(``--inherit parent``: every layer that matches a parent's starts from its trained
weights), ``first`` (``--inherit first``: stage 0 only, the layers seed 004 finds
most general), each with full fidelity, and ``none-sha`` / ``parent-sha`` with
successive halving. Arms of one schedule train the same number of networks for the
same epochs, so their budgets are equal by construction; every run's epochs are
printed. Runs and figures as :mod:`arms` makes them (interleaved seed by seed), plus
per run the share of layers its children inherited and the search epochs it spent
until a training first scored the ``none`` arm's best validation error of the same
seed (``reach``; "-" when it never did). Last line ``inherit_vs_none: +X.XX pp``
(delivered test, ``parent`` against ``none``).

Run ``python experiments/bench_inherit.py`` (digits, defaults, seeds 0,1,2) or, on
Fashion-MNIST, ``--dataset fashion_mnist --set data.max_train_samples=10000``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arms import compare, reach, reach_text, results, test_gap  # noqa: E402

from gnas.config import load_config, parse_set  # noqa: E402
from gnas.records import Kind  # noqa: E402
from gnas.report.sections import lineage_counts  # noqa: E402

ARMS: dict[str, dict[str, Any]] = {
    "none": {"evolution.inherit": "none"},
    "parent": {"evolution.inherit": "parent"},
    "first": {"evolution.inherit": "first"},
    "none-sha": {"evolution.inherit": "none", "fidelity.schedule": "sha"},
    "parent-sha": {"evolution.inherit": "parent", "fidelity.schedule": "sha"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="a config override for every arm, e.g. evolution.generations=5")
    p.add_argument("--out", default="runs/bench_inherit")
    return p.parse_args(argv)


def inherited_share(path: Path) -> dict[str, float]:
    """The share of the search children's inheritable layers that started from a parent."""
    return {"inherited": lineage_counts(results(path), (Kind.SEARCH,))["inherited_share"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = parse_set(args.overrides)
    arms = {a: ARMS[a] for a in args.arms.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    found = compare(arms, args.dataset, seeds, overrides, Path(args.out), extra=inherited_share)
    for base, others in (("none", ("parent", "first")), ("none-sha", ("parent-sha",))):
        if base not in found:
            continue
        for arm in (a for a in others if a in found):
            epochs = load_config(overrides={"data.dataset": args.dataset, **overrides, **ARMS[arm]}).train.epochs
            print(f"{reach_text(arm, base, *reach(found, arm, base, epochs))}; inherited {np.mean(found[arm]['inherited']):.0%} of layers; "
                  f"test vs {base} {test_gap(found, arm, base):+.2f} pp")
    if "none" in found and "parent" in found:
        print(f"inherit_vs_none: {test_gap(found, 'parent', 'none'):+.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
