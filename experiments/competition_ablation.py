"""Does layer-wise competition (and growth from base models) find better networks sooner?

Same seeds, same evaluation budget: every (data set, seed) runs four searches —
competition on/off x growth on/off — and each is cut at the evaluation count of the
shortest of the four, so champions' extra evaluations are paid for out of the same
budget. Best fitness so far is read from ``evaluations.db`` in row order (search and
champion evaluations: every network trained counts once).

Writes, under ``--out``:
  curves.csv   dataset, config, seed, evaluation, fitness, best_fitness, kind
  summary.csv  dataset, config, seed, budget, best_fitness, best_val_error
  curves.png   mean best fitness vs evaluations per config, one panel per data set

Runs that already finished in ``--out`` are reused, so an interrupted experiment
continues where it stopped. Example (about 15 minutes on 2 CPU cores)::

  python experiments/competition_ablation.py --datasets digits fashion_mnist \
      --seeds 0 1 --generations 4 --population 6 --max-train-samples 300
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

CONFIGS: dict[str, list[str]] = {
    "competition+growth": [],
    "growth only": ["--no-competition"],
    "competition only": ["--set", "evolution.growth=false"],
    "neither": ["--no-competition", "--set", "evolution.growth=false"],
}
CREDITED = ("search", "champion")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-train-samples", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lambda-c", type=float, default=0.881,
                   help="initial gene density, the same for every config (paper's image value); "
                        "-1 = measure it per run")
    p.add_argument("--budget", type=int, default=0,
                   help="evaluations per run to compare; 0 = the shortest run of each data set and seed")
    p.add_argument("--out", type=Path, default=Path("runs/competition_ablation"))
    return p.parse_args(argv)


def run_dir(args: argparse.Namespace, dataset: str, config: str, seed: int) -> Path:
    return args.out / dataset / config.replace(" ", "_").replace("+", "_") / f"seed{seed}"


def search(args: argparse.Namespace, dataset: str, config: str, seed: int) -> Path:
    """Run (or reuse, or resume) one search; returns its run directory."""
    path = run_dir(args, dataset, config, seed)
    state = path / "state.json"
    if state.is_file() and json.loads(state.read_text()).get("finished"):
        return path
    common = ["--generations", str(args.generations), "--population", str(args.population),
              "--epochs", str(args.epochs), "--threads", str(args.threads)]
    if (path / "gnas-run.json").is_file():  # interrupted earlier: continue it
        cmd = [sys.executable, "-m", "gnas", "resume", str(path), *common]
    else:
        cmd = [sys.executable, "-m", "gnas", "evolve", "--dataset", dataset, "--seed", str(seed),
               "--max-train-samples", str(args.max_train_samples), "--run-dir", str(path),
               *common, *CONFIGS[config]]
        if args.lambda_c >= 0:
            cmd += ["--lambda-c", str(args.lambda_c)]
    print("$", shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"search failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return path


def evaluations(path: Path) -> list[dict[str, Any]]:
    """Search and champion evaluations of a run, in the order they were made."""
    with sqlite3.connect(path / "evaluations.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT kind, fitness, val_error FROM evaluations ORDER BY id").fetchall()
    return [dict(r) for r in rows if r["kind"] in CREDITED and r["fitness"] is not None]


def curve(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Best fitness (and the val error of that network) after each of the first ``budget`` evaluations."""
    out, best, error = [], float("inf"), None
    for n, row in enumerate(rows[:budget], start=1):
        if row["fitness"] < best:
            best, error = row["fitness"], row["val_error"]
        out.append({"evaluation": n, "fitness": row["fitness"], "best_fitness": best,
                    "best_val_error": error, "kind": row["kind"]})
    return out


def collect(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run everything; curves and summary rows at the common budget."""
    curves, summary = [], []
    for dataset in args.datasets:
        for seed in args.seeds:
            rows = {c: evaluations(search(args, dataset, c, seed)) for c in CONFIGS}
            budget = args.budget or min(len(r) for r in rows.values())
            for config, r in rows.items():
                points = curve(r, budget)
                curves += [{"dataset": dataset, "config": config, "seed": seed, **p} for p in points]
                last = points[-1]
                summary.append({"dataset": dataset, "config": config, "seed": seed, "budget": len(points),
                                "best_fitness": last["best_fitness"],
                                "best_val_error": last["best_val_error"]})
    return curves, summary


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, curves: list[dict[str, Any]], datasets: list[str]) -> None:
    """Mean best fitness over seeds vs evaluations, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for config in CONFIGS:
            pts = [c for c in curves if c["dataset"] == dataset and c["config"] == config]
            seeds = sorted({c["seed"] for c in pts})
            length = min(sum(1 for c in pts if c["seed"] == s) for s in seeds)
            grid = np.array([[c["best_fitness"] for c in pts if c["seed"] == s][:length] for s in seeds])
            ax.plot(np.arange(1, length + 1), grid.mean(axis=0), label=config)
        ax.set_title(dataset)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best fitness (mean of {len(seeds)} seeds)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'dataset':<15}{'config':<20}{'budget':>7}{'best F (mean)':>15}{'val error (mean)':>18}")
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        for config in CONFIGS:
            sel = [s for s in summary if s["dataset"] == dataset and s["config"] == config]
            fit = sum(s["best_fitness"] for s in sel) / len(sel)
            err = sum(s["best_val_error"] for s in sel) / len(sel)
            budget = "/".join(str(s["budget"]) for s in sel)
            print(f"{dataset:<15}{config:<20}{budget:>7}{fit:>15.4f}{err:>18.4f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("$", shlex.join([sys.executable, *sys.argv]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    curves, summary = collect(args)
    write_csv(args.out / "curves.csv", curves)
    write_csv(args.out / "summary.csv", summary)
    plot(args.out / "curves.png", curves, args.datasets)
    print_table(summary)
    print(f"\nwrote {args.out / 'curves.csv'}, {args.out / 'summary.csv'}, {args.out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
