"""Holding back Ctrl-C / SIGTERM while finished work is being recorded.

``gnas.cli.main`` turns the signals into exceptions; the code that writes a
checkpoint or commits an evaluation runs inside :func:`deferred_interrupts`, so
a first interrupt lands only once that work is on disk. It lives apart from
the run directory because the CLI and the evaluation store use it as well.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_deferral: dict[str, Any] = {"depth": 0, "pending": None}


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back Ctrl-C / SIGTERM (as raised by ``gnas.cli.main``) until the block ends.

    Checkpoint writes and evaluation commits run inside this block, so a first
    interrupt never lands between a finished evaluation and its row. The atomic
    writes keep files consistent even without it; this keeps finished work.
    """
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
    if _deferral["depth"] == 0 and _deferral["pending"] is not None:
        exc, _deferral["pending"] = _deferral["pending"], None
        raise exc


def defer_interrupt(exc: BaseException) -> bool:
    """Keep ``exc`` for the end of the current deferred block; False when there is none."""
    if _deferral["depth"] == 0:
        return False
    _deferral["pending"] = _deferral["pending"] or exc
    return True


def note_interrupt(exc: KeyboardInterrupt) -> None:
    """Record the interrupt the CLI raises, for :func:`interrupt_exit_code`."""
    _deferral["raised"] = exc


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 128 + N for signal N: the status of the interrupt that was raised.

    Code that catches an interrupt and raises a plain KeyboardInterrupt in its
    place (Ray's ``wait`` and ``get`` do) would turn a SIGTERM into a Ctrl-C;
    the interrupt the CLI raised is recorded, so the status stays the signal's.
    """
    code = getattr(exc, "exit_code", None)
    if code is None:
        code = getattr(_deferral.get("raised"), "exit_code", 130)
    return int(code)


def acknowledge_interrupt() -> None:
    """Record that an interrupt reached the code that handles it (see ``gnas.cli.main.Interrupts``).

    A KeyboardInterrupt raised while Python runs a weakref callback or a
    destructor (for example inside Keras' ``clear_session``) is silently
    dropped; until this is called, the CLI raises it again from a SIGALRM
    interval timer, which is stopped here (gnas uses that timer for nothing else).
    """
    _deferral["acknowledged"] = True
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)


def interrupt_acknowledged() -> bool:
    return bool(_deferral.get("acknowledged"))
