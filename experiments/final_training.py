"""How the delivered network is trained: the final training's learning-rate schedule, measured.

Question: the search hands over its best network trained to convergence
(``final.max_epochs``, ``final.patience``); does dropping the learning rate on a
plateau (``final.lr_factor``) deliver a better model, and how does the delivered
model compare with scikit-learn's obvious baselines on the same split?

For each search seed, a default ``gnas evolve`` run (its wall time printed) picks
a network; that network's final training is then repeated for every variant of
``--factors`` over the run's own final seeds (the delivered seed and the extra
seeds), the variants interleaved seed by seed so machine load falls on all of
them alike. Printed per variant: test score mean ± std over seeds and runs,
epochs trained, and the gain over the constant rate; then LogisticRegression,
MLPClassifier and SVC on the same training split, and the last line
``lr_drop_vs_constant: +X.XX pp`` for the best factor.

Run ``python experiments/final_training.py`` (digits, seeds 0,1,2, factors
0,0.5,0.2; about 10 minutes on 2 cores). Finished runs under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from gnas import session
from gnas.backend.evaluator import Evaluator
from gnas.config import RunConfig, load_config
from gnas.datasets import load_for_run
from gnas.runs.directory import RunDir
from gnas.search.final import delivered_seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--seeds", default="0,1,2", help="search seeds: one default run each")
    p.add_argument("--factors", default="0,0.5,0.2", help="final.lr_factor values (0 = constant rate)")
    p.add_argument("--out", default="runs/final_training")
    return p.parse_args(argv)


def default_run(dataset: str, seed: int, out: Path) -> tuple[Path, float]:
    """A default search on ``dataset`` (or its finished directory) and its wall seconds."""
    path = out / f"{dataset}-seed{seed}"
    took = path / "bench_wall_s.json"
    if not took.exists():
        start = time.perf_counter()
        session.start(load_config(overrides={"data.dataset": dataset, "evolution.seed": seed}), path,
                      out=io.StringIO(), progress=False)
        took.write_text(json.dumps(time.perf_counter() - start))
    return path, json.loads(took.read_text())


def with_factor(cfg: RunConfig, factor: float) -> RunConfig:
    return dataclasses.replace(cfg, final=dataclasses.replace(cfg.final, lr_factor=factor))


def baselines(data: Any) -> dict[str, float]:
    """scikit-learn's defaults on the same training split, scored on the same test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    x = np.concatenate([flat(data.x_train), flat(data.x_val)])
    y = np.concatenate([data.y_train, data.y_val])
    out = {}
    for name, model in (("LogisticRegression", LogisticRegression(max_iter=2000)),
                        ("MLPClassifier", MLPClassifier(random_state=0, max_iter=1000)), ("SVC", SVC())):
        out[name] = 100.0 * model.fit(x, y).score(flat(data.x_test), data.y_test)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    factors = [float(f) for f in args.factors.split(",")]
    scores: dict[float, list[float]] = {f: [] for f in factors}
    epochs: dict[float, list[int]] = {f: [] for f in factors}
    walls, delivered, data = [], [], None
    for seed in seeds:
        path, wall = default_run(args.dataset, seed, Path(args.out))
        walls.append(wall)
        summary = json.loads((path / "best" / "summary.json").read_text())
        delivered.append(float(np.mean(summary.get("test_scores") or [summary["test_score"]])))
        cfg = RunDir(path).load_config()
        data = load_for_run(cfg)
        key, genome = summary["key"], summary["genome"]
        final_seeds = delivered_seeds(cfg.evolution, key)
        for s in final_seeds:
            for f in factors:  # interleaved: every variant sees the same machine state
                _, metrics = Evaluator(with_factor(cfg, f), data).final(genome, s)
                scores[f].append(metrics["test_score"])
                epochs[f].append(metrics["final_training"]["epochs"])
        print(f"seed {seed}: default run {wall:.0f} s, delivered test {delivered[-1]:.2f} "
              f"(over {len(final_seeds)} seeds), " + ", ".join(
                  f"factor {f:g}: {np.mean(scores[f][-len(final_seeds):]):.2f}" for f in factors), flush=True)
    base = scores[factors[0]]
    print(f"{args.dataset}: {len(seeds)} default runs, {np.mean(walls):.0f} ± {np.std(walls):.0f} s each, "
          f"delivered test {np.mean(delivered):.2f} ± {np.std(delivered):.2f}")
    for f in factors:
        gain = np.mean(np.array(scores[f]) - np.array(base))
        print(f"final.lr_factor={f:<4g} test {np.mean(scores[f]):.2f} ± {np.std(scores[f]):.2f} "
              f"(n={len(scores[f])})  epochs {np.mean(epochs[f]):.1f}  vs constant {gain:+.2f} pp")
    if data is not None and data.task == "classification":
        for name, value in baselines(data).items():
            print(f"{name:<19} test {value:.2f}")
    best = max(factors[1:] or factors, key=lambda f: np.mean(scores[f]))
    print(f"lr_drop_vs_constant: {np.mean(scores[best]) - np.mean(base):+.2f} pp (factor {best:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
