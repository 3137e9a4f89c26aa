"""What the pruner's fine-tuning does to a network that no cut touched.

The pruner keeps a cut when the cut network, fine-tuned ``cycles`` steps, scores
at least as well as a control: the same network fine-tuned as long without the
cut. When fine-tuning alone moves the validation error by more than a cut does,
that comparison is decided by the fine-tuning, not by the cut. This script trains
networks as the search trains them, then fine-tunes each from its trained
weights at several learning-rate scales (a fraction of the network's own
learning rate, which the genome holds) and several batch orders, and prints,
per scale: the mean change of the validation error (drift) and its spread over
batch orders (what a control comparison has to see through).

The networks are the bases the pruner worked on in the given run directories
(``--runs``; a run that did not prune gives its best network), or random genomes of the search space that train to a validation
error below ``--max-error``.

    python experiments/fine_tune_drift.py --dataset digits --networks 4
    python experiments/fine_tune_drift.py --runs runs/pruning-table/fashion_mnist-p0.5-s0 \\
        --dataset fashion_mnist --max-train-samples 10000 --set space.family=dense
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, pstdev

import numpy as np


def _bases(runs: list[Path]) -> list[str]:
    out: list[str] = []
    for run in runs:
        chains = json.loads((run / "state.json").read_text())["steps"].get("pruning", {}).get("chains", {})
        genomes = [c["base"] for c in chains.values()]
        if not genomes and (run / "best" / "summary.json").is_file():  # a run without pruning
            genomes = [json.loads((run / "best" / "summary.json").read_text())["genome"]]
        out += [g for g in genomes if g not in out]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--max-train-samples", type=int, default=600)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--networks", type=int, default=4, help="random networks (without --runs)")
    p.add_argument("--max-error", type=float, default=0.5)
    p.add_argument("--orders", type=int, default=5, help="batch orders per scale")
    p.add_argument("--scales", default="1,0.3,0.1")
    p.add_argument("--runs", nargs="*", type=Path, default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    from gnas.backend import runtime
    runtime.configure(1)
    from gnas.backend import masking
    from gnas.backend.evaluator import Evaluator
    from gnas.backend.trainer import compile_model, score
    from gnas.config import load_config, parse_set
    from gnas.datasets import load_for_run
    from gnas.errors import EvaluationFailed
    from gnas.genome.space import bits_to_str, str_to_bits
    from gnas.records import derive_seed

    overrides = {"data.dataset": args.dataset, "train.epochs": args.epochs,
                 "data.max_train_samples": args.max_train_samples}
    overrides.update(parse_set(args.set))
    cfg = load_config(None, overrides)
    ev = Evaluator(cfg, load_for_run(cfg))
    rng = np.random.default_rng(args.seed)
    genomes = _bases(args.runs)
    scales = [float(s) for s in args.scales.split(",")]
    drift: dict[float, list[float]] = {s: [] for s in scales}
    spread: dict[float, list[float]] = {s: [] for s in scales}
    tried = 0
    while (len(genomes) if args.runs else len(drift[scales[0]]) < args.networks) and tried < 50:
        genome = genomes.pop(0) if args.runs else bits_to_str(ev.space.random_bits(rng))
        tried += 1
        arch = ev.space.decode(str_to_bits(genome))
        seed = derive_seed(cfg.evolution.seed, ev.space.key(str_to_bits(genome)))
        try:
            model = ev.train(arch, seed)
        except EvaluationFailed as exc:  # a random genome may diverge; the search scores it as failed
            print(f"skipped: {exc}", flush=True)
            continue
        compile_model(model, arch)
        base = score(model, arch, ev.data.x_val, ev.data.y_val)["error"]
        if not args.runs and base > args.max_error:
            continue
        weights = model.get_weights()
        line = [f"base val error {base:.4f}; lr {arch.learning_rate:.3g}, momentum {arch.momentum:.2f}"]
        for s in scales:
            errors = []
            for order in range(args.orders):
                model.set_weights(weights)
                try:
                    masking.masked_fit(model, ev.data.x_train, ev.data.y_train, None, task=arch.task,
                                       learning_rate=arch.learning_rate * s, momentum=arch.momentum,
                                       steps=args.cycles, batch_size=ev.batch_size(arch),
                                       seed=derive_seed(seed, f"order{order}"))
                    compile_model(model, arch)
                    errors.append(score(model, arch, ev.data.x_val, ev.data.y_val)["error"] - base)
                except EvaluationFailed:  # diverged: the pruner counts it a failed attempt
                    errors.append(1.0 - base)
            drift[s].append(mean(errors))
            spread[s].append(pstdev(errors))
            line.append(f"x{s:g}: drift {mean(errors):+.4f} spread {pstdev(errors):.4f}")
        print("; ".join(line), flush=True)
    print(f"{len(drift[scales[0]])} networks, {args.orders} batch orders, {args.cycles} steps")
    print("| lr scale | drift of val error (mean ± std over networks) | spread over batch orders (mean) |")
    print("|---|---|---|")
    for s in scales:
        if drift[s]:
            print(f"| {s:g} | {mean(drift[s]):+.4f} ± {pstdev(drift[s]):.4f} | {mean(spread[s]):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
