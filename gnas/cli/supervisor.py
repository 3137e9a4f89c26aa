"""A search that uses Ray runs in a child process, so a Ray crash still ends in one line.

Part of Ray's driver is C++: when a Ray process the driver depends on dies (the
raylet fate-shares with its dashboard agent, for one), Ray's core worker ends
the driver process from C++ with exit status 1 and a Ray log line, and no
Python handler runs. So ``gnas evolve`` and ``gnas resume`` on Ray run the
command in a child process (``python -m gnas`` with the same arguments) and
this process, which never imports Ray, waits for it. The child's output passes
straight through (it inherits stdout and stderr); Ctrl-C, SIGTERM and SIGHUP
sent here are forwarded to it, so an interrupt keeps the checkpoint and prints
the resume command as it does without Ray; Ctrl-Z stops both.

The child says it reached the end of its command (whatever its exit status) by
writing to a pipe whose descriptor it finds in :data:`CHILD_ENV`. A child that
exits without doing so, and without having been sent a signal from here, died
under gnas: this process then removes the temporary files and the lock that the
dead process left (every file of a run is replaced atomically, so what remains
is the last checkpoint and every committed evaluation). It then resumes the run
in a new child (``gnas resume RUN``, which starts a new Ray), at most
``parallel.restarts`` times, saying so in one line each time; past that, or
when the child died before the run directory existed, it prints one line with
the resume command and exits with status 2. A resume ends as the uninterrupted
run would have, so a restart loses at most the trainings that were in flight.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gnas.cli.options import overrides_from
from gnas.config import RunConfig, load_config
from gnas.errors import GnasError
from gnas.execution.local import uses_ray
from gnas.execution.ray_connect import require_ray
from gnas.runs.directory import RunDir, resume_command

log = logging.getLogger(__name__)

CHILD_ENV = "GNAS_SUPERVISOR_FD"
FINISHED = b"finished\n"
# The signals a platform has of these (Windows has neither SIGHUP nor SIGQUIT).
FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                  if hasattr(signal, name))


class ChildReport:
    """In a supervised child: the pipe on which it says that its command finished.

    Created once at the start of ``main``; it takes the descriptor out of the
    environment, so the processes Ray starts later neither see nor inherit it.
    """

    def __init__(self) -> None:
        text = os.environ.pop(CHILD_ENV, "")
        self.fd: int | None = int(text) if text.isdigit() else None

    @property
    def is_child(self) -> bool:
        return self.fd is not None

    def finished(self) -> None:
        """Tell the supervisor that the command ran to its end (its exit status is its own)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, FINISHED)
            os.close(self.fd)
        self.fd = None


@dataclass(frozen=True)
class Supervised:
    """A command to run in a child process: its arguments and the run it works on."""

    argv: list[str]
    run_dir: Path
    program: tuple[str, ...] = (sys.executable, "-m", "gnas")   # what runs ``argv``
    restarts: int = 0            # resumes after the child died (parallel.restarts)
    options: tuple[str, ...] = ()  # the options before the command (-q, -v), kept by a resume

    def resumed(self) -> "Supervised":
        """The command that continues this one's run from its last checkpoint."""
        return Supervised([*self.options, "resume", str(self.run_dir)], self.run_dir, self.program,
                          self.restarts - 1, self.options)


def supervised_command(args: argparse.Namespace, argv: Sequence[str]) -> Supervised | None:
    """The child's command when ``args`` is a search that uses Ray; None to run it here.

    Reads only the configuration. Anything wrong with it is left to the command
    itself, which reports it as it always does; a Ray that is not installed is
    refused here (ClusterError), before a child is started. A new run without
    ``--run-dir`` gets its default name here, so that this process knows where
    the run is. Without process groups (Windows) the search runs in this process.
    """
    command = getattr(args, "command", None)
    if command not in ("evolve", "resume"):
        return None
    try:
        cfg: RunConfig = (load_config(args.config, overrides_from(args), preset=args.preset)
                          if command == "evolve" else RunDir(args.run_dir).load_config(overrides_from(args)))
    except (GnasError, OSError, ValueError):
        return None
    if not uses_ray(cfg):
        return None
    require_ray(cfg)  # one line before the child starts, not a traceback from inside it
    if not hasattr(os, "killpg"):
        return None
    argv = list(argv)
    run_dir = args.run_dir
    if run_dir is None:
        from gnas.session import default_run_dir

        run_dir = str(default_run_dir(cfg))
        argv += ["--run-dir", run_dir]
    options = tuple(argv[:argv.index(command)]) if command in argv else ()
    return Supervised(argv, Path(run_dir), restarts=cfg.parallel.restarts, options=options)


def supervise(command: Supervised) -> int:
    """Run ``command`` in a child process and return its exit status, or 2 if it died.

    A child that died is followed by a resume of its run, while restarts are left.
    """
    while True:
        code, ended = run_child(command)
        if ended:
            return code
        run = RunDir(command.run_dir)
        if command.restarts <= 0 or not run.is_run():
            return died(command.run_dir, code)
        tidy(run)
        print(f"\ngnas: {_death(code)}; resuming {run.path} from its last checkpoint "
              f"({command.restarts - 1} restart(s) left after this one)", file=sys.stderr, flush=True)
        command = command.resumed()


def run_child(command: Supervised) -> tuple[int, bool]:
    """Run ``command`` in a child process: its exit status, and whether it ended under gnas.

    The child runs in its own process group, so a Ctrl-C at the terminal reaches
    it once (forwarded from here), not twice (which would stop it at once). Ctrl-Z
    and ``fg`` / ``bg`` stop and continue the child's group with this process.
    """
    read_fd, write_fd = os.pipe()
    child: subprocess.Popen | None = None
    pending: list[int] = []   # signals that came before the child existed
    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        if child is None:
            pending.append(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def stop(signum: int, frame: Any) -> None:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGSTOP)
        # SIGSTOP, not SIGTSTP: the kernel drops a SIGTSTP of default action in a process
        # group without a parent in the session (a job whose shell is gone).
        os.kill(os.getpid(), signal.SIGSTOP)   # this process stops here until it is continued

    def resume(signum: int, frame: Any) -> None:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGCONT)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    previous.update({signal.SIGTSTP: signal.signal(signal.SIGTSTP, stop),
                     signal.SIGCONT: signal.signal(signal.SIGCONT, resume)})
    try:
        try:
            log.debug("running the search in a supervised child: %s", " ".join(command.argv))
            child = subprocess.Popen([*command.program, *command.argv],
                                     env={**os.environ, CHILD_ENV: str(write_fd)},
                                     pass_fds=(write_fd,), process_group=0)
        finally:
            os.close(write_fd)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    with os.fdopen(read_fd, "rb") as pipe:
        finished = pipe.read() == FINISHED
    if finished or forwarded:
        return (code if code >= 0 else 128 - code), True
    return code, False


def _death(code: int) -> str:
    """How a child died, in words."""
    if code < 0:
        return f"the search process was killed by {_signal_name(-code)}"
    return (f"the search process ended abruptly (exit status {code}): one of Ray's processes "
            "died and took it down")


def died(run_dir: Path, code: int) -> int:
    """Tidy what a child that died left in ``run_dir``, say how to go on; returns 2."""
    what = _death(code)
    run = RunDir(run_dir)
    if run.is_run():
        tidy(run)
        advice = (f"every finished evaluation and the last completed generation are saved in "
                  f"{run.path}; resume with `{resume_command(run.path)}`")
    else:
        advice = "no run was saved; run the command again"
    print(f"\ngnas: error: {what}; {advice}.", file=sys.stderr, flush=True)
    return 2


def tidy(run: RunDir) -> None:
    """Remove the temporary files and the lock file that a dead process left in ``run``.

    Taking the lock proves that no process works on the run any more (the kernel
    released the dead one's); a run that another process holds is left alone.
    """
    with contextlib.suppress(GnasError, OSError):
        with run.locked():
            run.remove_stale_temp_files()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
