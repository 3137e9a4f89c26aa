"""Training progress reported from inside a training, a few times a second.

A fused group's epoch or a final training can run for minutes; the trainers
report each slice of batches they finish here, and whoever shows progress (the
search's progress bar, the final training's line) listens for the time it is
shown. The trainers also return to Python between slices, which is when a first
Ctrl-C / SIGTERM (``gnas.cli.main``) lands, so this is also where an interrupt
acts. Listeners are attached by the caller for the time of a run; nothing
listens by default.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

SLICE_S = 0.5
"""Seconds of training between two returns to Python: an interrupt acts within about this."""


@dataclass(frozen=True)
class Beat:
    """Where a training stands: ``what`` trains (``"8 networks"``), its epoch and batch."""

    what: str
    epoch: int
    epochs: int
    batch: int
    batches: int

    def text(self) -> str:
        """``8 networks: epoch 1/2, batch 120/469``."""
        return f"{self.what}: epoch {self.epoch}/{self.epochs}, batch {self.batch}/{self.batches}"


Listener = Callable[[Beat], None]
_listeners: list[Listener] = []
_limit: dict[str, float | None] = {"at": None, "seconds": None, "networks": None}


def listen(listener: Listener) -> None:
    """Have ``listener`` see every beat until :func:`unlisten`."""
    _listeners.append(listener)


def unlisten(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Have ``listener`` see every beat until the block ends."""
    listen(listener)
    try:
        yield
    finally:
        unlisten(listener)


@contextlib.contextmanager
def time_limit(seconds: float, networks: int = 1) -> Iterator[None]:
    """Fail the training of ``networks`` inside the block once it runs ``seconds`` per network
    (0: no limit).

    ``train.eval_timeout`` in this process: checked at every beat, so a training
    over its limit fails at the next slice or batch boundary with that reason. A
    group of P networks may run P times the limit, as on Ray.
    """
    if seconds <= 0:
        yield
        return
    _limit.update(at=time.monotonic() + seconds * networks, seconds=seconds, networks=networks)
    try:
        yield
    finally:
        _limit.update(at=None, seconds=None, networks=None)


def beat(what: str, epoch: int, epochs: int, batch: int, batches: int) -> None:
    """Tell every listener where a training stands (cheap when nobody listens).

    Raises:
        EvaluationFailed: The training ran past its :func:`time_limit`.
    """
    at = _limit["at"]
    if at is not None and time.monotonic() > at:
        from gnas.errors import EvaluationFailed

        group = f" per network, {_limit['networks']} trained together" if (_limit["networks"] or 1) > 1 else ""
        raise EvaluationFailed(f"timed out after {_limit['seconds']:g} s (--eval-timeout){group}, "
                               f"at epoch {epoch}/{epochs}, batch {batch}/{batches}")
    if not _listeners:
        return
    news = Beat(what, epoch, epochs, batch, batches)
    for listener in list(_listeners):
        listener(news)


class Slices:
    """Sizes the slices of batches a traced epoch runs between returns to Python.

    The first slice is short; each next one is sized from the measured time per
    batch so that a slice lasts about :data:`SLICE_S` seconds.
    """

    def __init__(self, batches: int, first: int = 4) -> None:
        self.batches = batches
        self.size = max(1, min(first, batches))
        self._started = 0.0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """``(first batch, number of batches)`` until the epoch is covered."""
        done = 0
        while done < self.batches:
            count = min(self.size, self.batches - done)
            self._started = time.perf_counter()
            yield done, count
            took = time.perf_counter() - self._started
            per_batch = took / count if took > 0 else 0.0
            if per_batch > 0:
                self.size = max(1, min(self.batches, int(SLICE_S / per_batch)))
            done += count
