"""Edge-of-chaos vs random initialisation (paper Fig. 2, 5 and 6), measured.

Question: does a population drawn at the edge of chaos (``--init coe``) search
better than uniform random bits (``--init random``) with the same seeds and the
same budget? Both run through the real engine (``gnas.session``); a callback
records every generation's population. Written to ``--out`` (default
``runs/coe_vs_random``):

* ``generations.csv``: one row per (init, seed, generation): best and mean
  validation loss and error, failures, diversity (mean pairwise Hamming distance
  and mean per-locus entropy), lambda of the connection genes, and the mean and
  standard deviation of every hyper-parameter gene;
* ``loss.png`` (Fig. 2), ``diversity.png``, ``hyperparameters.png`` (Fig. 5/6:
  the spread, "deviation", of each hyper-parameter gene per generation);
* ``summary.json``: per init, means over seeds of the final and best values;
  ``final_ci95``: 95 % t-intervals over seeds of the final values;
  ``paired``: CoE minus random per seed (final best and mean validation loss,
  best over the run, diversity) with mean, 95 % t-interval, paired t-test and
  Wilcoxon signed-rank p; ``convergence``: per run, the generations to
  convergence that Wright-Fisher (the paper's model: fixation) and the
  operators' chain (novelty rule included) predict from generation 0, the
  observed under the operators' definition (the mean state of the connection
  genes settles, gnas.markov.settling) and the best-fitness one, and their
  medians and ratios;
* ``runs/<init>-seed<k>/``: the run directories (``gnas report`` reads them).

Run ``python experiments/coe_vs_random.py`` (defaults: digits, 50 generations,
population 8, seeds 0-4, 1 epoch, 600 training samples); ``--smoke`` runs 2
generations of population 4 on one seed. ``--lambda-c 0.881`` runs CoE at the
paper's preset instead of the measured ``lambda_c``; ``--inits coe`` runs one
side only. An interrupted experiment continues where it stopped when run again
with the same ``--out``; finished runs are reused. ``--report-only`` trains
nothing and summarises the runs as they stand, every run cut to the last
generation all of them reached (stated in the output).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gnas import session

from gnas.chaos import population as chaos
from gnas.search import statistics
from gnas.search.callbacks import Callback
from gnas.config import load_config
from gnas.runs.directory import RunDir
from gnas.genome.space import HYPER_FIELDS

INITS = ("coe", "random")
LOG_NAME = "generations.jsonl"


class GenerationLog(Callback):
    """Appends one JSON line per generation to ``RUN_DIR/generations.jsonl``."""

    def __init__(self, run_dir: RunDir) -> None:
        self.path = run_dir.path / LOG_NAME

    def on_generation_end(self, search, info) -> None:
        rows = [search.store.lookup(k) for k in info.keys]
        losses = [r.val_loss if r and r.ok else math.nan for r in rows]
        errors = [r.val_error if r and r.ok else math.nan for r in rows]
        bits = np.asarray(info.population)
        record: dict[str, Any] = {
            "generation": info.generation, "val_losses": losses, "val_errors": errors,
            "fitness": list(info.fitness), "diversity": statistics.mean_hamming(bits),
            "entropy": statistics.per_locus_entropy(bits), "length": int(bits.shape[1]),
            "lambda": statistics.population_lambda([search.space.connection_genes(b) for b in info.population]),
            "hyper": [search.space.hyper(b) for b in info.population],
            "lambda_c": search.state.lambda_c, "lambda_c_source": search.state.lambda_c_source,
        }
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--generations", type=int, default=50)
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated run seeds (>= 5 for the paired test)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int, default=600)
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads per evaluation")
    p.add_argument("--lambda-c", dest="lambda_c", type=float, default=-1.0,
                   help="lambda_c for --init coe; -1 measures it in every run (the default)")
    p.add_argument("--inits", default="coe,random", help="initialisations to run (coe, random)")
    p.add_argument("--out", default="runs/coe_vs_random")
    p.add_argument("--smoke", action="store_true", help="2 generations, population 4, seed 0")
    p.add_argument("--report-only", dest="report_only", action="store_true",
                   help="train nothing: summarise the runs in --out as they stand, all cut to the "
                        "last generation every run has reached")
    args = p.parse_args(argv)
    if args.smoke:
        args.generations, args.population, args.seeds = 2, 4, "0"
        args.max_train_samples = min(args.max_train_samples, 300)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.init_list = [i.strip() for i in args.inits.split(",") if i.strip()]
    unknown = set(args.init_list) - set(INITS)
    if unknown or not args.seed_list or not args.init_list:
        p.error(f"--inits takes coe and/or random, --seeds at least one seed (got {args.inits!r}, {args.seeds!r})")
    return args


def run_one(args: argparse.Namespace, init: str, seed: int, out: Path) -> Path:
    """One search; resumes (or just reuses) a run directory left by an earlier call."""
    path = out / "runs" / f"{init}-seed{seed}"
    overrides = {"data.dataset": args.dataset, "data.max_train_samples": args.max_train_samples,
                 "evolution.generations": args.generations, "evolution.population": args.population,
                 "evolution.seed": seed, "evolution.init": init, "evolution.lambda_c": args.lambda_c,
                 "train.epochs": args.epochs, "train.threads": args.threads,
                 # the comparison is per generation; the final pick's extra seeds and the
                 # final training play no part
                 "evolution.final_seeds": 0, "final.max_epochs": 0}
    log = [GenerationLog(RunDir(path))]
    if RunDir(path).is_run():
        session.resume(path, {}, extra_callbacks=log)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        session.start(load_config(None, overrides), path, extra_callbacks=log)
    return path


def generation_rows(init: str, seed: int, run_path: Path) -> list[dict[str, Any]]:
    """The CSV rows of one run, from its generation log (last record per generation wins)."""
    records: dict[int, dict[str, Any]] = {}
    for line in (run_path / LOG_NAME).read_text().splitlines():
        rec = json.loads(line)
        records[rec["generation"]] = rec
    return [_row(init, seed, records[g]) for g in sorted(records)]


def _row(init: str, seed: int, rec: dict[str, Any]) -> dict[str, Any]:
    loss = np.asarray(rec["val_losses"], dtype=float)
    err = np.asarray(rec["val_errors"], dtype=float)
    ok = np.isfinite(loss)
    row: dict[str, Any] = {
        "init": init, "seed": seed, "generation": rec["generation"],
        "best_val_loss": float(loss[ok].min()) if ok.any() else math.nan,
        "mean_val_loss": float(loss[ok].mean()) if ok.any() else math.nan,
        "best_val_error": float(err[ok].min()) if ok.any() else math.nan,
        "mean_val_error": float(err[ok].mean()) if ok.any() else math.nan,
        "failed": int((~ok).sum()), "best_fitness": float(min(rec["fitness"])),
        "diversity": rec["diversity"], "diversity_per_gene": rec["diversity"] / rec["length"],
        "entropy": rec["entropy"], "lambda": rec["lambda"], "lambda_c": rec["lambda_c"],
    }
    for f in HYPER_FIELDS:
        values = np.asarray([h[f.name] for h in rec["hyper"]], dtype=float)
        values = np.log10(values) if f.log else values
        name = f"log10_{f.name}" if f.log else f.name
        row[f"{name}_mean"] = float(values.mean())
        row[f"{name}_std"] = float(values.std())
    return row


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def by_init(rows: list[dict[str, Any]], column: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per init: generations, mean over seeds and standard deviation over seeds of a column."""
    out = {}
    for init in sorted({r["init"] for r in rows}, key=INITS.index):
        mine = [r for r in rows if r["init"] == init]
        gens = sorted({r["generation"] for r in mine})
        table = [[r[column] for r in mine if r["generation"] == g] for g in gens]
        out[init] = (np.asarray(gens), np.asarray([np.nanmean(t) for t in table]),
                     np.asarray([np.nanstd(t) for t in table]))
    return out


def plot_panels(rows: list[dict[str, Any]], columns: list[tuple[str, str]], path: Path, title: str) -> Path:
    """One panel per column, CoE and random side by side (mean over seeds, band = std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(columns))
    nrows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 3.6 * nrows), squeeze=False)
    for ax, (column, label) in zip(axes.ravel(), columns):
        for init, (g, mean, std) in by_init(rows, column).items():
            ax.plot(g, mean, label=init)
            ax.fill_between(g, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(columns):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(rows: list[dict[str, Any]], out: Path, seeds: int) -> list[Path]:
    note = f"mean over {seeds} seed(s), band = std"
    hyper = [(f"log10_{f.name}_std" if f.log else f"{f.name}_std",
              f"std of {'log10 ' if f.log else ''}{f.name}") for f in HYPER_FIELDS]
    return [
        plot_panels(rows, [("best_val_loss", "best validation loss"),
                           ("mean_val_loss", "mean validation loss"),
                           ("best_val_error", "best validation error"),
                           ("mean_val_error", "mean validation error")],
                    out / "loss.png", f"validation loss per generation ({note})"),
        plot_panels(rows, [("diversity_per_gene", "mean pairwise Hamming / length"),
                           ("entropy", "mean per-locus entropy (bits)"),
                           ("lambda", "lambda of the connection genes")],
                    out / "diversity.png", f"population diversity ({note})"),
        plot_panels(rows, hyper, out / "hyperparameters.png",
                    f"spread of each hyper-parameter gene ({note})"),
    ]


SPREADS = tuple(f"log10_{f.name}_std" if f.log else f"{f.name}_std" for f in HYPER_FIELDS)
"""Columns of the per-gene spread (paper Fig. 5/6) of each hyper-parameter gene."""


def t_interval(values: list[float]) -> list[float] | None:
    """95 % t-interval of the mean over seeds; None below two finite values."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return None
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return [float(v.mean()) - half, float(v.mean()) + half]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per init, over seeds: final-generation values, best loss ever and where it came."""
    out: dict[str, Any] = {}
    for init in INITS:
        mine = [r for r in rows if r["init"] == init]
        if not mine:
            continue
        last_g = max(r["generation"] for r in mine)
        last = [r for r in mine if r["generation"] == last_g]
        first = [r for r in mine if r["generation"] == 0]
        seeds = sorted({r["seed"] for r in mine})
        best_ever = [min(r["best_val_loss"] for r in mine if r["seed"] == s) for s in seeds]
        out[init] = {
            "seeds": seeds, "generations": last_g,
            "lambda_c": sorted({r["lambda_c"] for r in mine if r["lambda_c"] is not None}),
            **{f"final_{k}": float(np.nanmean([r[k] for r in last]))
               for k in ("best_val_loss", "mean_val_loss", "best_val_error", "mean_val_error",
                         "diversity_per_gene", "entropy", "lambda")},
            **{f"initial_{k}": float(np.nanmean([r[k] for r in first]))
               for k in ("best_val_loss", "mean_val_loss", "diversity_per_gene", "entropy", "lambda")},
            "final_ci95": {k: t_interval([r[k] for r in last])
                           for k in ("best_val_loss", "mean_val_loss", "best_val_error", "diversity_per_gene",
                                     "entropy", "lambda", *SPREADS)},
            "best_val_loss_ever": float(np.mean(best_ever)),
            "mean_failed_per_generation": float(np.mean([r["failed"] for r in mine])),
        }
    return out


def paired(rows: list[dict[str, Any]], column: str, final: bool = True) -> dict[str, Any] | None:
    """CoE minus random, paired by seed: mean, 95 % t-interval, paired t-test and Wilcoxon.

    ``final`` compares the last generation's value, otherwise the best over all
    generations. None unless both inits ran on at least two common seeds.
    """
    from scipy import stats

    def per_seed(init: str) -> dict[int, float]:
        mine = [r for r in rows if r["init"] == init]
        if not mine:
            return {}
        last_g = max(r["generation"] for r in mine)
        out: dict[int, float] = {}
        for seed in sorted({r["seed"] for r in mine}):
            values = [r[column] for r in mine if r["seed"] == seed and (not final or r["generation"] == last_g)]
            out[seed] = float(np.nanmin(values)) if values else math.nan
        return out

    coe, rnd = per_seed("coe"), per_seed("random")
    seeds = sorted(set(coe) & set(rnd))
    d = np.array([coe[s] - rnd[s] for s in seeds])
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    mean, sem = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    half = float(stats.t.ppf(0.975, len(d) - 1) * sem)
    t_p = float(stats.ttest_rel([coe[s] for s in seeds], [rnd[s] for s in seeds]).pvalue) if sem > 0 else 1.0
    w_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"column": column, "which": "final generation" if final else "best over the run",
            "seeds": seeds, "differences": [round(float(x), 6) for x in d],
            "mean_difference": mean, "ci95": [mean - half, mean + half],
            "paired_t_p": t_p, "wilcoxon_p": w_p,
            "verdict": ("CoE lower" if mean + half < 0 else "random lower" if mean - half > 0
                        else "no difference resolved (the interval contains 0)")}


def convergence_rows(out: Path, seeds: list[int], inits: list[str], upto: int | None = None
                     ) -> list[dict[str, Any]]:
    """Per run: the chains' forecasts from generation 0 next to the observed figures.

    ``observed`` and ``operators`` share one definition (the generation at which
    the mean state of the connection genes settles, gnas.markov.settling);
    ``observed_best_fitness`` is the last improvement of the best fitness.
    """
    from gnas.report import convergence

    result = []
    for init in inits:
        for seed in seeds:
            summary = convergence.for_run(RunDir(out / "runs" / f"{init}-seed{seed}"), upto)
            result.append({"init": init, "seed": seed, **summary["predicted_convergence"],
                           "observed": summary["observed_convergence"],
                           "observed_best_fitness": summary["observed_best_fitness_convergence"],
                           "mutated_share_run": summary["mutated_share"]["run"],
                           "mutated_share_forecast": summary["mutated_share"]["forecast"]})
    return result


MODELS = ("wright_fisher", "operators", "operators_without_selection", "operators_hindsight",
          "wright_fisher_settling", "operators_mixing")


def convergence_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median observed convergence against each chain's median forecast (target: within 20 %).

    ``<model>_ratio`` is the forecast's median over the observed median.
    """
    observed = [r["observed"] for r in rows if r["observed"] is not None]
    out: dict[str, Any] = {"runs": len(rows), "converged_runs": len(observed),
                           "observed_median": float(np.median(observed)) if observed else None}
    best = [r["observed_best_fitness"] for r in rows if r.get("observed_best_fitness") is not None]
    out["observed_best_fitness_median"] = float(np.median(best)) if best else None
    for model in MODELS:
        values = [r[model] for r in rows if r.get(model) is not None]
        median = float(np.median(values)) if values else None
        out[f"{model}_median"] = median
        usable = median is not None and observed and out["observed_median"] != 0
        out[f"{model}_ratio"] = median / out["observed_median"] if usable else None
        out[f"{model}_relative_error"] = abs(median - out["observed_median"]) / out["observed_median"] \
            if usable else None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("command: " + shlex.join([sys.executable, "experiments/coe_vs_random.py", *(argv or sys.argv[1:])]),
          flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in args.seed_list:
        for init in args.init_list:
            print(f"== init {init}, seed {seed}", flush=True)
            path = out / "runs" / f"{init}-seed{seed}" if args.report_only else run_one(args, init, seed, out)
            rows += generation_rows(init, seed, path)
    upto = min(max(r["generation"] for r in rows if (r["init"], r["seed"]) == run)
               for run in {(r["init"], r["seed"]) for r in rows})
    if args.report_only:
        print(f"== every run cut to generation {upto}", flush=True)
    rows = [r for r in rows if r["generation"] <= upto]
    write_csv(rows, out / "generations.csv")
    plots = write_plots(rows, out, len(args.seed_list))
    summary = summarise(rows)
    summary["paired"] = [x for x in (paired(rows, "best_val_loss"), paired(rows, "best_val_loss", final=False),
                                     paired(rows, "mean_val_loss"), paired(rows, "diversity_per_gene"))
                         if x is not None]
    conv = convergence_rows(out, args.seed_list, args.init_list, upto)
    summary["convergence"] = {"runs": conv, "verdict": convergence_verdict(conv),
                              "verdict_by_init": {init: convergence_verdict([r for r in conv if r["init"] == init])
                                                  for init in args.init_list}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print("wrote " + ", ".join(str(p) for p in [out / "generations.csv", out / "summary.json", *plots]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
