"""How much faster do 2 Ray workers evaluate than the in-process executor?

Question: on this machine, what throughput (evaluations per minute) do the
in-process executor, one Ray worker and two Ray workers reach on the same
workload, and what does Ray add to each evaluation? The ceiling of the 2-worker
speed-up is 2.0 (two cores, one TensorFlow thread per evaluation).

Workload: Fashion-MNIST, 10,000 training images (+2,500 validation), a fixed set
of genomes drawn with a fixed seed from the conv search space, 1 epoch each,
every evaluation with one TensorFlow thread whichever executor runs it. Each
executor first evaluates one warm-up genome per worker (TensorFlow import, first
graph), not counted; start-up costs are printed separately.

Command:
    python experiments/bench_parallel.py [--genomes 8] [--epochs 1] [--train 10000]

Last line: ``speedup: X.XX`` (2 Ray workers over the in-process executor).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from gnas.config import RunConfig, load_config
from gnas.datasets import Dataset, load_dataset
from gnas.execution.local import LocalExecutor
from gnas.records import EvalTask, derive_seed
from gnas.genome.space import bits_to_str
from gnas.genome.factory import make_space

VAL_FRACTION = 0.2


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--genomes", type=int, default=8, help="timed evaluations per executor")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=10_000, help="training images")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed genomes")
    return p.parse_args()


def workload(args: argparse.Namespace) -> tuple[RunConfig, Dataset, list[EvalTask]]:
    """The configuration, the data and the fixed genomes every executor evaluates."""
    pool = round(args.train / (1 - VAL_FRACTION))
    cfg = load_config(None, {"data.dataset": "fashion_mnist", "data.max_train_samples": pool,
                             "data.val_fraction": VAL_FRACTION, "train.epochs": args.epochs,
                             "train.threads": 1, "space.conv_widths": (8, 16, 16, 32)})
    dataset = load_dataset("fashion_mnist", max_train_samples=pool, val_fraction=VAL_FRACTION,
                           seed=0)
    space = make_space(cfg, dataset)
    rng = np.random.default_rng(args.seed)
    tasks = []
    for _ in range(args.genomes + 2):  # two warm-up genomes first
        bits = space.random_bits(rng)
        key = space.key(bits)
        tasks.append(EvalTask(key=key, genome=bits_to_str(bits), seed=derive_seed(0, key)))
    return cfg, dataset, tasks


def timed(executor, tasks: list[EvalTask]) -> dict[str, float]:
    """Wall time of evaluating ``tasks`` and the time spent inside the evaluations."""
    start = time.perf_counter()
    results = list(executor.run(tasks))
    wall = time.perf_counter() - start
    failures = [r for r in results if not r.ok]
    if failures:
        print(f"  {len(failures)} failed: {failures[0].message.splitlines()[0]}")
    inside = sum(r.seconds for r in results)
    return {"wall": wall, "inside": inside, "n": len(results),
            "per_min": 60.0 * len(results) / wall}


def run_local(cfg: RunConfig, dataset: Dataset, tasks: list[EvalTask]) -> dict[str, float]:
    executor = LocalExecutor(cfg, dataset)
    start = time.perf_counter()
    list(executor.run(tasks[:1]))
    warm = time.perf_counter() - start
    out = timed(executor, tasks[2:])
    executor.close()
    return out | {"startup": warm}


def run_ray(cfg: RunConfig, dataset: Dataset, tasks: list[EvalTask], workers: int) -> dict[str, float]:
    from dataclasses import replace

    from gnas.execution.ray_pool import RayExecutor

    cfg = replace(cfg, parallel=replace(cfg.parallel, workers=workers))
    start = time.perf_counter()
    executor = RayExecutor(cfg, dataset)
    try:
        executor.wait_ready()
        list(executor.run(tasks[:workers]))  # one warm-up genome per worker
        warm = time.perf_counter() - start
        return timed(executor, tasks[2:]) | {"startup": warm}
    finally:
        executor.close()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def report(name: str, m: dict[str, float]) -> None:
    print(f"{name:<22} {m['per_min']:7.2f} evaluations/min  ({m['n']:.0f} in {m['wall']:.1f} s, "
          f"{m['wall'] / m['n']:.2f} s each; start-up and warm-up {m['startup']:.1f} s)  [{load()}]",
          flush=True)


def main() -> int:
    args = parse_args()
    print("command: python " + " ".join([sys.argv[0]] + sys.argv[1:]), flush=True)
    print(f"before: {load()}", flush=True)
    cfg, dataset, tasks = workload(args)
    print(f"workload: {dataset.summary()}; {args.genomes} fixed genomes, {args.epochs} epoch(s), "
          "1 TensorFlow thread per evaluation", flush=True)
    local = run_local(cfg, dataset, tasks)
    report("in-process", local)
    one = run_ray(cfg, dataset, tasks, 1)
    report("Ray, 1 worker", one)
    two = run_ray(cfg, dataset, tasks, 2)
    report("Ray, 2 workers", two)
    overhead = (one["wall"] - one["inside"]) / one["n"] - (local["wall"] - local["inside"]) / local["n"]
    print(f"Ray per-evaluation overhead vs in-process: {overhead * 1000:.0f} ms "
          f"(wall minus time inside the evaluation, 1 worker vs in-process); per-evaluation wall "
          f"{one['wall'] / one['n']:.2f} s vs {local['wall'] / local['n']:.2f} s")
    print(f"2 workers / 1 Ray worker: {two['per_min'] / one['per_min']:.2f}")
    print(f"after: {load()}")
    print(f"speedup: {two['per_min'] / local['per_min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
