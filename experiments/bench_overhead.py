"""How much of a search's wall time is spent outside Keras training and scoring?

Runs one real search in this process and times every call of the trainer's ``fit``
and ``score`` (the Keras work). Everything else — the GA, decoding, model building,
SQLite, checkpoints, the progress bar — is overhead.

    python experiments/bench_overhead.py                       # the issue's Fashion-MNIST run
    python experiments/bench_overhead.py --dataset digits --generations 4 --population 8 --epochs 4

Last line: ``overhead: X.X%``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from gnas import session
from gnas.search.callbacks import Callback
from gnas.config import load_config


class Counter(Callback):
    """Counts trained evaluations and cache hits."""

    def __init__(self) -> None:
        self.trained = self.cached = 0

    def on_evaluated(self, search, result, cached):
        if cached:
            self.cached += 1
        else:
            self.trained += 1


def timed(fn, bucket: list[float]):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - start)
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-train-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("command: python experiments/bench_overhead.py " + " ".join(sys.argv[1:]))
    cfg = load_config(None, {"data.dataset": args.dataset, "evolution.generations": args.generations,
                             "evolution.population": args.population, "train.epochs": args.epochs,
                             "data.max_train_samples": args.max_train_samples,
                             "evolution.seed": args.seed})
    from gnas.backend import evaluator as evaluator_module
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    keras_time: list[float] = []
    evaluator_module.fit = timed(evaluator_module.fit, keras_time)
    evaluator_module.score = timed(evaluator_module.score, keras_time)
    counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        code = session.start(cfg, run_dir, extra_callbacks=[counter])
        wall = time.perf_counter() - start
        from gnas.report.summary import build_report
        from gnas.runs.directory import RunDir

        rep = build_report(RunDir(run_dir))
    if code != 0:
        raise SystemExit(code)
    inside = sum(keras_time)
    print(f"wall time: {wall:.1f} s")
    print(f"best test score: {rep['best']['test_score']:.2f}")
    print(f"evaluations trained: {counter.trained}, cache hits: {counter.cached}, "
          f"failed: {rep['failed_evaluations']}")
    print(f"keras training + scoring: {inside:.1f} s ({len(keras_time)} calls)")
    print(f"outside keras: {wall - inside:.1f} s")
    print(f"overhead: {100 * (wall - inside) / wall:.1f}%")


if __name__ == "__main__":
    main()
