"""``gnas report``: what a run found."""
from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="summarise a run (--json for machines)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plots", action="store_true", help="write PNG plots")
    p.add_argument("--out", help="directory for --plots (default RUN_DIR/plots)")
    p.add_argument("--evaluations", nargs="?", const="-", metavar="FILE.csv",
                   help="instead of the summary, every evaluation as CSV (failure reasons "
                   "included) into FILE.csv, or on stdout with - or no file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas.report.summary import build_report, format_report
    from gnas.runs.directory import RunDir

    run_dir = RunDir(args.run_dir)
    if args.evaluations is not None:
        return _evaluations(run_dir, args)
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


def _evaluations(run_dir, args: argparse.Namespace) -> int:
    """The run's evaluations as CSV, on stdout or into a file written atomically.

    Works on a run that has no finished generation yet: that is when the reasons
    of failed evaluations are most wanted.
    """
    from gnas.errors import ConfigError, RunDirError
    from gnas.report.evaluations import check_csv_out, csv_text, evaluation_rows, write_evaluations_csv
    from gnas.runs.atomic import atomic_write_text

    if args.json or args.plots:
        raise ConfigError("--evaluations writes only the CSV; run `gnas report` again for --json "
                          "or --plots.")
    out = None if args.evaluations == "-" else check_csv_out(run_dir, args.evaluations)
    rows = evaluation_rows(run_dir)
    if out is None:
        write_evaluations_csv(rows, sys.stdout)
        return 0
    try:
        atomic_write_text(out, csv_text(rows))
    except OSError as exc:
        raise RunDirError(f"cannot write --evaluations {args.evaluations} ({exc.strerror}); choose a "
                          "file in a writable directory.") from None
    print(f"evaluations: {args.evaluations} ({len(rows)} rows)")
    return 0
