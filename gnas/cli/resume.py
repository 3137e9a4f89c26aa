"""``gnas resume``: continue a run exactly where it stopped, or extend it."""
from __future__ import annotations

import argparse

from gnas.cli.options import add_resume_flags, overrides_from


def add_parser(sub) -> None:
    p = sub.add_parser("resume", help="continue or extend a run from its run directory",
                       description="Continue an interrupted run, or extend a finished one "
                       "with --generations. Only how long and where the search runs may change "
                       "(the flags below); anything that defines the search is refused, "
                       "so a resumed run ends exactly as an uninterrupted one would. A run killed "
                       "at any moment resumes from its last checkpoint; finished evaluations are "
                       "never trained again.")
    p.add_argument("--data-dir", dest="data_dir", help="where the data set files are now")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_resume_flags(p)
    # Parsed only to be refused with the reason (they define the search), so not offered in --help.
    p.add_argument("--population", type=int, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas import session

    return session.resume(args.run_dir, overrides_from(args), progress=getattr(args, "verbosity", 0) >= 0)
