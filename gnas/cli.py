"""The ``gnas`` command line: one line of error and exit 2 for every user error.

Sub-commands live in :mod:`gnas.commands`, one module each, imported only when
used so ``gnas datasets`` does not pay for TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import Sequence

from gnas import __version__
from gnas.errors import GnasError, Terminated

COMMANDS = {
    "evolve": "run a search (default: digits, about a minute on 2 CPU cores)",
    "resume": "continue or extend a run from its run directory",
    "report": "summarise a run (--json for machines)",
    "datasets": "list the data sets gnas knows and whether they are available here",
}
EXTRA_COMMANDS = ("chaos", "markov", "export")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"gnas: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gnas", description="Genetic neural-architecture search.")
    parser.add_argument("--version", action="version", version=f"gnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in list(COMMANDS) + [c for c in EXTRA_COMMANDS if _available(c)]:
        module = importlib.import_module(f"gnas.commands.{name}")
        module.add_parser(sub)
    return parser


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"gnas.commands.{name}") is not None


def _terminate(signum, frame) -> None:
    """SIGTERM stops like Ctrl-C: checkpoint kept, resume command printed, exit 143."""
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = args.run(args)
    except GnasError as exc:
        print(f"gnas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        return 143
    except KeyboardInterrupt:
        return 130
    return code
