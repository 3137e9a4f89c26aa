"""What a row, column or block mask saves once the network is exported compacted.

Question: for one trained digits network, how much smaller and faster is the
exported (compacted) file under each structured mask than the same masked
network stored dense, and does it predict the same?

Workload, in one process: a fixed genome (``--seed``) is trained as the search
trains it; for each mask kind the pruning replay chooses the masks at
``--sparsity`` and fine-tunes (``--cycles`` steps); the masked network as it
is in memory (stored dense) and the network ``gnas export`` saves (compacted)
are both written, then counted, sized and timed with
:func:`gnas.backend.latency.median_latency` (one thread, alternating). The
largest difference of their outputs on the test split is printed too.

    python experiments/mask_export.py [--sparsity 0.5] [--cycles 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from gnas.config import load_config
from gnas.datasets import load_for_run
from gnas.genome.space import bits_to_str


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--kinds", default="column,row,block,irregular")
    args = p.parse_args()
    from gnas.backend import runtime

    runtime.configure(1, use_gpu=False)
    from gnas.backend.evaluator import Evaluator
    from gnas.backend.export import save_model
    from gnas.backend.latency import median_latency
    from gnas.backend.prune_eval import network_size, rebuild_pruned, replay
    from gnas.genome.space import str_to_bits

    cfg = load_config(None, {"train.epochs": args.epochs, "data.max_train_samples": 600,
                             "space.stage_nodes": (3, 4), "space.max_depth": 2})
    ev = Evaluator(cfg, load_for_run(cfg))
    rng = np.random.default_rng(args.seed)
    genome = bits_to_str(ev.space.random_bits(rng))
    print("genome", genome, ev.space.decode(str_to_bits(genome)).describe())
    x = ev.data.x_test
    print("| mask | params stored dense → exported | non-zero | FLOPs dense → exported | file KB dense → exported "
          "| ms per 256-batch call dense → exported | µs per sample | max |Δ output| |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            opts = {"base": genome, "cuts": [], "cycles": args.cycles, "mask": kind, "sparsity": args.sparsity}
            state = replay(ev, opts)
            dense_out = np.asarray(state.model.predict(x, verbose=0))
            dense_params = state.model.count_params()
            size = network_size(ev, str_to_bits(genome), state, None)
            save_model(state.model, Path(tmp) / "dense.keras")
            small, _ = rebuild_pruned(ev, genome, 0, opts)
            small_size = network_size(ev, str_to_bits(genome), state, kind)
            delta = float(np.abs(np.asarray(small.predict(x, verbose=0)) - dense_out).max())
            save_model(small, Path(tmp) / "small.keras")
            files = [Path(tmp) / "dense.keras", Path(tmp) / "small.keras"]
            kb = [f.stat().st_size / 1024 for f in files]
            lat = median_latency(files)
            print(f"| {kind} | {dense_params:,} → {small.count_params():,} | {small_size['params']:,} | "
                  f"{size['flops']:,} → {small_size['flops']:,} | {kb[0]:.1f} → {kb[1]:.1f} | "
                  f"{lat[0]['latency_ms']:.3f} → {lat[1]['latency_ms']:.3f} | "
                  f"{lat[0]['latency_us_per_sample']:.2f} → {lat[1]['latency_us_per_sample']:.2f} | {delta:.2e} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
