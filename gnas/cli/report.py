"""``gnas report``: what a run found."""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="summarise a run (--json for machines)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plots", action="store_true", help="write PNG plots")
    p.add_argument("--out", help="directory for --plots (default RUN_DIR/plots)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas.report.summary import build_report, format_report
    from gnas.runs.directory import RunDir

    run_dir = RunDir(args.run_dir)
    report = build_report(run_dir)
    if args.plots:
        from gnas.report.figures import write_plots

        report["plots"] = [str(p) for p in write_plots(run_dir, args.out)]
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_report(report))
        for path in report.get("plots", []):
            print(f"plot: {path}")
    return 0
