"""Exceptions of gnas.

User errors (bad input, bad configuration, a run directory that cannot be used)
derive from :class:`GnasError`; the CLI prints their message on one line and
exits with status 2. Anything else is a bug and exits with status 1.
"""
from __future__ import annotations


class GnasError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do."""

    exit_code = 2


class ConfigError(GnasError):
    """A configuration key, type or value that gnas cannot accept."""


class DataError(GnasError):
    """A data set that is missing, malformed or inconsistent."""


class RunDirError(GnasError):
    """A run directory that cannot be created, read, resumed or trusted."""


class ClusterError(GnasError):
    """Ray cannot provide the requested workers (cores, GPUs or cluster address)."""


class InvalidGenomeError(GnasError):
    """A genome of the wrong length or with values other than 0 and 1."""


class EvaluationFailed(Exception):
    """One candidate could not be trained or scored; the search goes on."""


class FatalError(GnasError):
    """The search cannot go on (for example, too many consecutive failures)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), handled like Ctrl-C but with exit status 128 + the signal number.

    Ctrl-C itself stays a plain KeyboardInterrupt (exit 130), so code that
    catches KeyboardInterrupt handles both alike.
    """

    def __init__(self, signum: int = 15) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
