"""How much does a GPU speed up a generation, and how many workers should share it?

Questions (the paper reports 8.4x over CPU and 92.9 % of operations on the GPU):
1. wall time of one generation (a fixed population, 1 epoch each) on the CPU
   and on the GPU, and their ratio;
2. the share of TensorFlow operations placed on the GPU while a candidate
   trains (from TensorFlow's device-placement log);
3. evaluations per minute with k = 1, 2, 4 Ray workers sharing one GPU
   (``--gpus-per-worker 1/k``: memory limit 1/k of the device each).

Workload: Fashion-MNIST, 10,000 training images, conv search space, fixed
genomes drawn with a fixed seed. CPU and GPU runs happen in separate processes,
because which devices TensorFlow uses is fixed when it is imported.

Command:
    python experiments/gpu_speedup.py [--population 8] [--train 10000]

Without a GPU it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np

from gnas.config import RunConfig, load_config
from gnas.datasets import Dataset, load_dataset
from gnas.records import EvalTask, derive_seed
from gnas.genome.space import bits_to_str
from gnas.genome.factory import make_space

VAL_FRACTION = 0.2
PLACEMENT = re.compile(r"(?:Executing op (\S+) in device|: \((\S+)\):) /job:\S*device:(GPU|CPU):\d+")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--population", type=int, default=8, help="genomes in the timed generation")
    p.add_argument("--train", type=int, default=10_000, help="training images")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", default="1,2,4", help="workers per GPU to compare")
    p.add_argument("--child", choices=("cpu", "gpu", "placement"), help=argparse.SUPPRESS)
    return p.parse_args()


def workload(args: argparse.Namespace) -> tuple[RunConfig, Dataset, list[EvalTask]]:
    pool = round(args.train / (1 - VAL_FRACTION))
    cfg = load_config(None, {"data.dataset": "fashion_mnist", "data.max_train_samples": pool,
                             "data.val_fraction": VAL_FRACTION, "train.epochs": args.epochs,
                             "train.threads": 0, "train.group_size": 1})  # one at a time
    dataset = load_dataset("fashion_mnist", max_train_samples=pool, val_fraction=VAL_FRACTION, seed=0)
    space = make_space(cfg, dataset)
    rng = np.random.default_rng(0)
    tasks = []
    for _ in range(args.population + 1):  # the first one warms up
        bits = space.random_bits(rng)
        key = space.key(bits)
        tasks.append(EvalTask(key=key, genome=bits_to_str(bits), seed=derive_seed(0, key)))
    return cfg, dataset, tasks


# ------------------------------------------------------------ child processes
def child(args: argparse.Namespace) -> int:
    """One measurement in a fresh process; prints one JSON line."""
    from gnas.backend import runtime

    if args.child == "placement":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    runtime.configure(0, use_gpu=args.child != "cpu")
    tf = runtime.import_tensorflow()
    from gnas.backend.evaluator import Evaluator

    cfg, dataset, tasks = workload(args)
    evaluator = Evaluator(cfg, dataset)
    if args.child == "placement":  # must be on before the first operation runs
        tf.debugging.set_log_device_placement(True)
        evaluator.evaluate(tasks[1])
        print(json.dumps({"gpus": len(tf.config.list_physical_devices("GPU"))}), flush=True)
        return 0
    evaluator.evaluate(tasks[0])  # warm-up: first graph, CUDA context
    start = time.perf_counter()
    results = [evaluator.evaluate(t) for t in tasks[1:]]
    print(json.dumps({"wall": time.perf_counter() - start, "ok": sum(r.ok for r in results),
                      "gpus": len(tf.config.list_physical_devices("GPU"))}), flush=True)
    return 0


def in_child(mode: str, args: argparse.Namespace) -> tuple[dict, str]:
    cmd = [sys.executable, __file__, "--child", mode, "--population", str(args.population),
           "--train", str(args.train), "--epochs", str(args.epochs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{mode} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1]), done.stdout + done.stderr  # placements go to both


def placement_share(log: str) -> tuple[float, int]:
    """Share of logged op placements on a GPU, and how many were counted.

    Function arguments and return values (``_Arg``, ``_Retval``, ...) are
    bookkeeping, not operations, and are left out.
    """
    devices = [device for eager, graph, device in PLACEMENT.findall(log)
               if not (eager or graph).startswith("_")]
    return (devices.count("GPU") / len(devices) if devices else 0.0), len(devices)


# ------------------------------------------------------------ Ray workers per GPU
def ray_throughput(cfg: RunConfig, dataset: Dataset, tasks: list[EvalTask], k: int) -> float:
    """Evaluations per minute with k workers sharing one GPU (warm workers)."""
    from gnas.execution.ray_plan import usable_cores
    from gnas.execution.ray_pool import RayExecutor

    threads = max(usable_cores() // k, 1)
    cfg = replace(cfg, parallel=replace(cfg.parallel, workers=k, gpus_per_worker=1.0 / k),
                  train=replace(cfg.train, threads=threads))
    executor = RayExecutor(cfg, dataset)
    try:
        executor.wait_ready()
        list(executor.run([tasks[0]] * k))
        start = time.perf_counter()
        results = list(executor.run(tasks[1:]))
        return 60.0 * len(results) / (time.perf_counter() - start)
    finally:
        executor.close()


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args)
    print("command: python " + " ".join([sys.argv[0]] + sys.argv[1:]), flush=True)
    from gnas.execution.ray_plan import visible_gpus

    if visible_gpus() == 0:
        print("no GPU visible here (no NVIDIA GPU in /proc/driver/nvidia/gpus, or "
              "CUDA_VISIBLE_DEVICES hides them): nothing to measure.")
        return 0
    gpu, _ = in_child("gpu", args)
    if not gpu["gpus"]:
        print("a GPU is present but TensorFlow cannot use it (no CUDA build or driver mismatch).")
        return 0
    cpu, _ = in_child("cpu", args)
    print(f"generation of {args.population} on CPU: {cpu['wall']:.1f} s; on GPU: {gpu['wall']:.1f} s; "
          f"speed-up {cpu['wall'] / gpu['wall']:.2f}x (paper: 8.4x)", flush=True)
    _, log = in_child("placement", args)
    share, count = placement_share(log)
    print(f"operations placed on the GPU: {100 * share:.1f} % of {count} placements (paper: 92.9 %)",
          flush=True)
    cfg, dataset, tasks = workload(args)
    for k in (int(x) for x in args.workers.split(",")):
        print(f"{k} worker(s) per GPU: {ray_throughput(cfg, dataset, tasks, k):.2f} evaluations/min",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
