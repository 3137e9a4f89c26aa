"""How much faster does a group of candidates train together than one at a time?

Question: on this machine, how many candidate-epochs per second does the
population trainer (``train.group_size = P``) reach against one-at-a-time Keras
``fit`` on the same genomes, and how far apart are the members' validation
accuracies? For the dense family it also times the P exact member graphs in one
step (``exact``), the path the masked superset replaces, and checks that the
superset gives each member the result its exact graph gives on the same order.

Workload, in one process with the variants interleaved (solo, fused[, exact],
solo, fused, ...) for ``--reps`` repetitions, each repetition on P fresh genomes that
share one training group (same stages and widths), drawn with a fixed seed:

* dense: sklearn digits (the whole set), one 3-node stage of width 64
  (``--dense-widths 32,64,128,256`` draws mixed widths: the superset pads them);
* conv: Fashion-MNIST, ``--train`` images (+25 % validation), up to two 3-node
  stages of width 16.

Every evaluation runs with one TensorFlow thread. The accuracy difference is
|fused - solo| per member; fused and solo draw different batch orders, so it
includes the spread of one shuffle against another.

Command:
    python experiments/bench_fused.py [--members 8] [--reps 3] [--epochs 2] [--train 10000]

Last lines: ``speedup_dense: X`` and ``speedup_conv: X`` (fused over solo throughput).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np

from gnas.config import RunConfig, load_config
from gnas.datasets import load_for_run
from gnas.genome.space import bits_to_str
from gnas.records import EvalTask, derive_seed


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=8, help="P, candidates per group")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train", type=int, default=10_000, help="Fashion-MNIST training images")
    p.add_argument("--families", default="dense,conv")
    p.add_argument("--dense-widths", default="64", help="comma-separated dense widths to draw from")
    return p.parse_args()


def config(family: str, args: argparse.Namespace) -> RunConfig:
    base = {"train.epochs": args.epochs, "train.threads": 1,
            "train.group_size": 1}  # solo: Keras' fit, one at a time (the fused side sets P)
    if family == "dense":
        widths = tuple(int(w) for w in args.dense_widths.split(","))
        return load_config(None, base | {"space.stage_nodes": (3,), "space.max_depth": 1,
                                         "space.dense_widths": (widths * 4)[:4]})
    return load_config(None, base | {"space.max_depth": 2,"data.dataset": "fashion_mnist",
                                     "data.max_train_samples": round(args.train / 0.8),
                                     "space.stage_nodes": (3, 3), "space.conv_widths": (16,) * 4})


def groups(ev, n_groups: int, members: int, seed: int) -> list[list[EvalTask]]:
    """``n_groups`` groups of ``members`` fresh genomes, each group of one signature."""
    rng = np.random.default_rng(seed)
    by_sig: dict[tuple, list[EvalTask]] = {}
    seen: set[str] = set()
    out: list[list[EvalTask]] = []
    while len(out) < n_groups:
        bits = ev.space.random_bits(rng)
        key = ev.space.key(bits)
        if key in seen:
            continue
        seen.add(key)
        task = EvalTask(key=key, genome=bits_to_str(bits), seed=derive_seed(0, key))
        bucket = by_sig.setdefault(ev.group_signature(task), [])
        bucket.append(task)
        if len(bucket) == members:
            out.append(list(bucket))
            bucket.clear()
    return out


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} CPUs"


def bench(family: str, args: argparse.Namespace) -> float:
    from gnas.backend.evaluator import Evaluator
    from gnas.backend.population import train_group

    cfg = config(family, args)
    data = load_for_run(cfg)
    solo_ev = Evaluator(cfg, data)
    fused_ev = Evaluator(replace(cfg, train=replace(cfg.train, group_size=args.members)), data)
    work = groups(solo_ev, args.reps + 1, args.members, seed=1)
    [solo_ev.evaluate(t) for t in work[0][:1]]  # warm-up: first graph of each kind
    train_group(fused_ev, work[0][:2])
    rates: dict[str, list[float]] = {"solo": [], "fused": []}
    diffs: list[float] = []
    exact_diffs: list[float] = []
    if family == "dense":
        rates["exact"] = []
        train_group(fused_ev, work[0][:2], fuse_dense=False)
    for rep, tasks in enumerate(work[1:]):
        t0 = time.perf_counter()
        solo = [solo_ev.evaluate(t) for t in tasks]
        t1 = time.perf_counter()
        fused = train_group(fused_ev, tasks)
        t2 = time.perf_counter()
        cand_epochs = len(tasks) * cfg.train.epochs
        rates["solo"].append(cand_epochs / (t1 - t0))
        rates["fused"].append(cand_epochs / (t2 - t1))
        diffs += [abs(a.val_error - b.val_error) for a, b in zip(solo, fused) if a.ok and b.ok]
        bad = sum(not r.ok for r in solo + fused)
        line = (f"{family} rep {rep}: solo {rates['solo'][-1]:.2f}, fused {rates['fused'][-1]:.2f}")
        if "exact" in rates:
            exact = train_group(fused_ev, tasks, fuse_dense=False)
            rates["exact"].append(cand_epochs / (time.perf_counter() - t2))
            exact_diffs += [abs(a.val_error - b.val_error) for a, b in zip(exact, fused) if a.ok and b.ok]
            bad += sum(not r.ok for r in exact)
            line += f", exact graphs {rates['exact'][-1]:.2f}"
        print(f"{line} candidate-epochs/s; failed {bad}  [{load()}]", flush=True)
    solo_rate, fused_rate = np.median(rates["solo"]), np.median(rates["fused"])
    print(f"{family}: median solo {solo_rate:.2f}, fused {fused_rate:.2f} candidate-epochs/s "
          f"(P = {args.members}, {len(data.x_train)} training samples, {cfg.train.epochs} epochs)")
    if "exact" in rates:
        exact_rate = np.median(rates["exact"])
        print(f"{family}: median exact graphs {exact_rate:.2f} candidate-epochs/s; superset "
              f"{fused_rate / exact_rate:.2f}x the exact graphs")
    if diffs:
        print(f"{family}: accuracy |fused - solo| mean {np.mean(diffs):.4f}, max {np.max(diffs):.4f} "
              f"over {len(diffs)} members (includes one shuffle against another)")
    if exact_diffs:
        print(f"{family}: accuracy |superset - exact graphs| (same order) mean "
              f"{np.mean(exact_diffs):.6f}, max {np.max(exact_diffs):.6f}")
    return float(fused_rate / solo_rate)


def main() -> int:
    args = parse_args()
    print("command: python " + " ".join([sys.argv[0]] + sys.argv[1:]), flush=True)
    from gnas.backend import runtime

    runtime.configure(1)
    speedups = {f: bench(f, args) for f in args.families.split(",")}
    for family, speedup in speedups.items():
        print(f"speedup_{family}: {speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
