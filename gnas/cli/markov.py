"""``gnas markov``: the Markov-chain analysis of a run, per generation."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("markov", help="Markov-chain analysis of a run: predicted vs observed convergence",
                       description="Per generation: entropy of the state distribution, rows of the "
                       "empirical transition matrix observed, and the generations to absorption that "
                       "the Wright-Fisher chain (the paper's model) predicts, and the generations to "
                       "convergence that the chain of gnas' own operators predicts, next to the "
                       "observed convergence.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plots", action="store_true",
                   help="write heat maps of the empirical and theoretical matrices (PNG)")
    p.add_argument("--out", help="directory for --plots (default RUN_DIR/plots/markov)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas.report import analysis

    run_dir = analysis.open_run(args.run_dir)
    records = analysis.markov_records(run_dir)
    summary = analysis.markov_summary(run_dir, records)
    summary.update(_convergence(run_dir, records, summary["observed_generations_to_convergence"]))
    plots = _write_plots(run_dir, args.out) if args.plots else []
    if args.json:
        print(json.dumps(summary, indent=1, allow_nan=False))
        for path in plots:
            print(f"plot: {path}", file=sys.stderr)
    else:
        print(analysis.format_markov_summary(summary))
        from gnas.report.convergence import format_convergence

        print(format_convergence(summary))
        for path in plots:
            print(f"plot: {path}")
    return 0


def _convergence(run_dir, records, observed) -> dict:
    """Both chains' predictions next to the observed convergence (needs the run's search space)."""
    from gnas.genome.factory import space_for_run
    from gnas.report.convergence import convergence_summary

    return convergence_summary(run_dir, records, space_for_run(run_dir.load_config()), observed)


def _write_plots(run_dir, out: str | None) -> list[Path]:
    from gnas.report import analysis

    out_dir = Path(out) if out else run_dir.path / "plots" / "markov"
    paths = [analysis.plot_matrices(r, out_dir / f"gen_{int(r['generation']):04d}.png")
             for r in analysis.markov_records(run_dir)]
    paths.append(analysis.save_figure(analysis.convergence_figure(run_dir), out_dir / "convergence.png"))
    return paths
