"""Table II's shape: generations to convergence and best score, with and without pruning.

For each data set, pruning target (none, 0.5, 0.7) and seed, run a small search
through the CLI and read its run directory and ``gnas report --json``: the
observed generations to convergence
(:func:`gnas.markov.chain.observed_generations_to_convergence` on the best fitness
per generation), the best network's test score, 100 x (1 - error), and what
pruning did to it: parameters and FLOPs as a fraction of its unpruned base
(``params / params_unpruned``; 1.0 when the best network is not a pruned one),
and file size and CPU latency before/after from the report's pruning section
(per call of a batch, per sample, per one-sample call; the table says how measured).
Prints the exact command of every run, then the table (mean ± std over seeds;
"-" where no run converged within the budget) and writes it as JSON next to the
runs.

    python experiments/pruning_table.py --out runs/pruning-table --datasets digits
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean, pstdev

from gnas.markov.chain import observed_generations_to_convergence

DATASETS = {"digits": ["--max-train-samples", "600"],
            "fashion_mnist": ["--max-train-samples", "10000"]}
TARGETS = (0.0, 0.5, 0.7)


def command(dataset: str, target: float, seed: int, run_dir: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "gnas", "evolve", "--dataset", dataset, "--run-dir", str(run_dir),
           "--seed", str(seed), "--population", str(args.population),
           "--generations", str(args.generations), "--epochs", str(args.epochs), "--lambda-c", "0.881",
           "--threads", str(args.threads), *DATASETS[dataset]]
    if args.family != "auto":
        cmd += ["--set", f"space.family={args.family}"]
    if args.final_seeds is not None:
        cmd += ["--set", f"evolution.final_seeds={args.final_seeds}"]
    if target > 0:
        cmd += ["--prune", str(target), "--set", f"prune.growth_generations={args.growth}",
                "--set", f"prune.cycles={args.cycles}"]
    return cmd


def _run_dir(out: Path, dataset: str, target: float, seed: int) -> Path:
    return out / f"{dataset}-p{target}-s{seed}"


def measure(run_dir: Path, patience: int) -> dict:
    state = json.loads((run_dir / "state.json").read_text())
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    best = [r["best"] for r in state["logbook"]]
    params, flops = summary["params"], summary["flops"]
    out = {"generations": observed_generations_to_convergence(best, patience=patience),
           "test_score": summary["test_score"], "pruned_fraction": summary.get("pruned_fraction", 0.0),
           "params": params, "params_fraction": params / summary.get("params_unpruned", params),
           "flops_fraction": flops / summary.get("flops_unpruned", flops),
           "started": (state["steps"].get("pruning") or {}).get("started")}
    report = subprocess.run([sys.executable, "-m", "gnas", "report", str(run_dir), "--json"],
                            capture_output=True, text=True)
    section = json.loads(report.stdout).get("pruning") if report.returncode == 0 else None
    for side in ("before", "after"):
        m = (section or {}).get(side) or {}
        out[f"bytes_{side}"] = m.get("model_bytes")
        out[f"latency_ms_{side}"] = m.get("latency_ms")
        out[f"latency_us_per_sample_{side}"] = m.get("latency_us_per_sample")
        out[f"latency_ms_one_{side}"] = m.get("latency_ms_one")
    out["latency_measure"] = ((section or {}).get("before") or {}).get("latency_measure")
    out["best_is_pruned"] = bool(((section or {}).get("after") or {}).get("is_pruned"))
    candidate = (section or {}).get("best_pruned") or {}
    out["candidate_pruned_fraction"] = candidate.get("pruned_fraction")
    out["candidate_val_error"] = candidate.get("val_error")
    out["candidate_val_error_unpruned"] = candidate.get("val_error_unpruned")
    return out


def _ms(values: list[float], fmt: str = ".2f") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{mean(values):{fmt}} ± {pstdev(values):{fmt}}"


def table(rows: list[dict]) -> str:
    lines = ["| data set | pruning | generations to convergence | best test score | params / unpruned "
             "| FLOPs / unpruned | P of best | file KB before → after | ms per batch call before → after "
             "| µs per sample before → after | ms per one-sample call before → after "
             "| final best pruned | best pruned candidate when not: P, val error vs unpruned |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ds in DATASETS:
        for t in TARGETS:
            cell = [r for r in rows if r["dataset"] == ds and r["target"] == t]
            if not cell:
                continue
            gens = [r["generations"] for r in cell if r["generations"] is not None]
            g = f"{_ms(gens)} ({len(gens)}/{len(cell)} converged)" if gens else f"- (0/{len(cell)})"
            kb = lambda side: _ms([r[f"bytes_{side}"] / 1024 if r.get(f"bytes_{side}") else None  # noqa: E731
                                   for r in cell], ".1f")
            lat = lambda side, what="ms": _ms([r.get(f"latency_{what}_{side}") for r in cell])  # noqa: E731
            lines.append(f"| {ds} | {t or 'none'} | {g} | {_ms([r['test_score'] for r in cell])} | "
                         f"{_ms([r['params_fraction'] for r in cell])} | "
                         f"{_ms([r['flops_fraction'] for r in cell])} | "
                         f"{_ms([r['pruned_fraction'] for r in cell])} | {kb('before')} → {kb('after')} | "
                         f"{lat('before')} → {lat('after')} | "
                         f"{lat('before', 'us_per_sample')} → {lat('after', 'us_per_sample')} | "
                         f"{lat('before', 'ms_one')} → {lat('after', 'ms_one')} | "
                         f"{sum(bool(r.get('best_is_pruned')) for r in cell)}/{len(cell)} | "
                         f"{_ms([r.get('candidate_pruned_fraction') for r in cell], '.3f')}, "
                         f"{_ms([r.get('candidate_val_error') for r in cell], '.4f')} vs "
                         f"{_ms([r.get('candidate_val_error_unpruned') for r in cell], '.4f')} |")
    measures = {r.get("latency_measure") for r in rows if r.get("latency_measure")}
    lines += [f"latency: {m}" for m in sorted(measures)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/pruning-table")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--growth", type=int, default=0,
                   help="generations of growth before pruning (0: half the generations)")
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1,
                   help="runs to train at once (each with --threads threads); finished runs are reused")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--targets", default=",".join(str(t) for t in TARGETS),
                   help="pruning targets to run (0 = no pruning), comma-separated")
    p.add_argument("--final-seeds", type=int, default=None,
                   help="evolution.final_seeds for every run (default: the config's); the final pick "
                        "re-trains unpruned networks only, so 0 lets a pruned network be the final best")
    p.add_argument("--family", default="auto", choices=("auto", "conv", "dense"),
                   help="search space family (auto: conv for images other than digits, else dense)")
    args = p.parse_args()
    out = Path(args.out)
    cells = [(ds, target, seed) for ds in args.datasets.split(",")
             for target in (float(t) for t in args.targets.split(",")) for seed in range(args.seeds)]
    commands = {cell: command(cell[0], cell[1], cell[2], _run_dir(out, *cell), args) for cell in cells}
    for cmd in commands.values():
        print("$", shlex.join(cmd), flush=True)
    todo = [cell for cell in cells if not (_run_dir(out, *cell) / "best" / "summary.json").is_file()]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        failed = [done for done in pool.map(lambda cell: subprocess.run(commands[cell], capture_output=True,
                                                                        text=True), todo)
                  if done.returncode != 0]
    for done in failed:
        print(shlex.join(done.args), done.stderr[-2000:], sep="\n", file=sys.stderr)
    if failed:
        return failed[0].returncode
    rows = []
    for ds, target, seed in cells:
        rows.append({"dataset": ds, "target": target, "seed": seed,
                     **measure(_run_dir(out, ds, target, seed), args.patience)})
        print(json.dumps(rows[-1]), flush=True)
    (out / "table.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
