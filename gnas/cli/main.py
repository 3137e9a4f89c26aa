"""The ``gnas`` command line: one line of error and exit 2 for every user error.

Sub-commands live in :mod:`gnas.cli`, one module each, listed in :data:`COMMANDS`;
each imports its heavy dependencies only when it runs, so ``gnas datasets``
does not pay for TensorFlow.

Messages go through the ``gnas`` logger hierarchy; the command prints them on
stderr as ``gnas: ...`` lines: INFO and above by default, only warnings and
errors with ``-q`` (which also hides the search's progress bar), DEBUG too with
``-v``. A command's result (a report, a summary) is printed on stdout either way.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from typing import Sequence

from gnas.version import __version__
from gnas.cli import chaos, datasets, evolve, export, markov, report, resume
from gnas.cli.supervisor import ChildReport, supervise, supervised_command
from gnas.errors import GnasError, Terminated
from gnas.runs import clock
from gnas.runs.directory import RunDir, held_runs, resume_command
from gnas.runs.interrupts import (acknowledge_interrupt, defer_interrupt, interrupt_acknowledged,
                                  interrupt_exit_code, note_interrupt)

# The sub-commands, one module of gnas.cli each (``add_parser`` and ``run``), in --help order.
# Each keeps its heavy imports (TensorFlow, Ray) inside ``run``.
COMMANDS = (evolve, resume, report, export, chaos, markov, datasets)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"gnas: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gnas", description="Genetic neural-architecture search.")
    parser.add_argument("--version", action="version", version=f"gnas {__version__}")
    add_verbosity_flags(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # `gnas evolve -q` as well as `gnas -q evolve`
        add_verbosity_flags(command_parser, default=argparse.SUPPRESS)
    return parser


def add_verbosity_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v`` (debug messages too) and ``-q`` (warnings and errors only) into ``verbosity``.

    A sub-command's flags default to SUPPRESS, so they do not undo the same
    flag given before the sub-command.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                       default=default, help="also print debug messages")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       default=default, help="print only warnings and errors (no progress)")


# verbosity -> the level of the ``gnas`` logger
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class MessageFormat(logging.Formatter):
    """``gnas: message``, with ``warning:`` / ``debug:`` before what is not plain information."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        kind = {logging.DEBUG: "debug"}.get(record.levelno) or (
            logging.getLevelName(record.levelno).lower() if record.levelno >= logging.WARNING else "")
        if kind and not text.startswith(f"{kind}:"):
            text = f"{kind}: {text}"
        return f"gnas: {text}"


class StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message comes, even if it was replaced since."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(verbosity: int) -> None:
    """Print the ``gnas`` logger's messages at ``verbosity`` on stderr.

    Replaces the handler of an earlier call, so calling ``main`` twice in one
    process prints each message once.
    """
    logger = logging.getLogger("gnas")
    for handler in [h for h in logger.handlers if isinstance(h.formatter, MessageFormat)]:
        logger.removeHandler(handler)
    handler = StderrHandler(sys.stderr)
    handler.setFormatter(MessageFormat())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    logger.propagate = False


# The signals that stop a command, of those the platform has (Windows has no SIGHUP).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Interrupts:
    """Signal handler: the first Ctrl-C / SIGTERM stops cleanly, the second at once.

    The first signal raises KeyboardInterrupt (SIGINT) or :class:`Terminated`
    (SIGTERM, SIGHUP) in the main thread: the session abandons the evaluations in
    flight, keeps the checkpoint and prints the resume command. Inside a
    checkpoint write or an evaluation commit the exception waits for the write to
    end. Python drops an exception raised while it runs a weakref callback or a
    destructor (Keras' ``clear_session`` runs many), so until the session
    acknowledges the interrupt it is raised again every :data:`RETRY_S` seconds.
    A second signal exits at once with ``os._exit``: every file of the run is
    replaced atomically and SQLite commits are crash-safe, so nothing is corrupted.
    """

    RETRY_S = 0.25

    def __init__(self) -> None:
        self.count = 0
        self.signum = 0

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable) -> None:
        """Drop, without a traceback, an interrupt Python could not raise; it is raised again."""
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            self._previous_hook(unraisable)

    def __call__(self, signum: int, frame) -> None:
        self.count += 1
        if self.count > 1:
            hint = "".join(f" Resume with: {resume_command(p)}" for p in held_runs())
            os.write(2, f"\ngnas: stopped at once; the run directory is consistent.{hint}\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        if hasattr(signal, "setitimer"):  # not on Windows: the interrupt is raised once there
            signal.signal(signal.SIGALRM, self._again)
            signal.setitimer(signal.ITIMER_REAL, self.RETRY_S, self.RETRY_S)
        self._raise()

    def _again(self, signum: int, frame) -> None:
        if interrupt_acknowledged():
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        self._raise()

    def _raise(self) -> None:
        exc = KeyboardInterrupt() if self.signum == signal.SIGINT else Terminated(self.signum)
        note_interrupt(exc)
        if not defer_interrupt(exc):
            raise exc


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``gnas`` command; returns its exit status.

    0 success; 2 a user error (one line on stderr, no traceback) or a search
    whose Ray died (resume command printed); 130 / 143 interrupted by Ctrl-C /
    SIGTERM (resume command printed); 1 a bug in gnas. A search on Ray runs in a
    child process that this one watches (:mod:`gnas.cli.supervisor`).
    """
    clock.mark_command_start()
    try:
        code = _main(argv)
    except KeyboardInterrupt as exc:  # a signal just after the command ended: stop as asked
        acknowledge_interrupt()
        code = interrupt_exit_code(exc)
    stopped = code in _INTERRUPTED and interrupt_acknowledged()
    if argv is None and (stopped or (code == 0 and _searched["done"])):
        _exit_now(code)
    return code


# Whether the command just run was a search run in this process (evolve or resume), all of
# whose files are written and closed once it returns.
_searched = {"done": False}


# The statuses of a command stopped by Ctrl-C, SIGTERM or SIGHUP.
_INTERRUPTED = {128 + int(s) for s in STOP_SIGNALS}


def _exit_now(code: int) -> None:
    """End a search command at once, its run saved, its files closed and its lock released.

    Python's own shutdown then frees every traced TensorFlow function and model
    one by one, which took from ten seconds to a minute on a loaded machine: after
    an interrupt the signal asked to stop, and after a finished search the summary
    is printed; everything worth keeping is on disk, so the process ends here.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    report = ChildReport()
    Interrupts().install()
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        configure_logging(getattr(args, "verbosity", 0))
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        child = None if report.is_child else supervised_command(args, _words(argv))
        if child is not None:
            return supervise(child)
        code = args.run(args)
        _searched["done"] = args.command in ("evolve", "resume")
        return code
    except GnasError as exc:
        print(f"gnas: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `gnas report RUN | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # after BrokenPipeError, which is one
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        print(f"gnas: error: {_one_line(str(exc))}; free space or fix permissions, "
              f"{_after_environment_error(args)}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        acknowledge_interrupt()
        return interrupt_exit_code(exc)
    finally:
        report.finished()


def _words(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


def _after_environment_error(args: argparse.Namespace | None) -> str:
    """What to do once space is freed: continue a run that exists, else run the command again.

    The run comes from the parsed arguments, so every spelling argparse accepts
    (``--run-dir X``, ``--run-dir=X``, an abbreviation) gets the same advice.
    """
    run = getattr(args, "run_dir", None) if getattr(args, "command", None) in ("evolve", "resume") else None
    if run and RunDir(run).is_run():
        return f"then continue it with `{resume_command(run)}`"
    return "then run the command again"


# Failures of the machine rather than of gnas: reported on one line, exit 2.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
