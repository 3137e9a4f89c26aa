"""TensorBoard event files with ``tf.summary``: the only place gnas writes them.

TensorFlow is started through :func:`gnas.backend.runtime.configure` with the
run's thread setting, so a writer opened before the first evaluation does not
change how the networks of that process train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from gnas.backend import runtime


class ScalarWriter:
    """Appends scalars to an event file in ``logdir`` (a new file per writer)."""

    def __init__(self, logdir: str | Path, threads: int = 0) -> None:
        runtime.configure(threads)
        self._tf = runtime.import_tensorflow()
        Path(logdir).mkdir(parents=True, exist_ok=True)
        self._writer = self._tf.summary.create_file_writer(str(logdir))

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write one step's scalars and flush, so a killed run keeps what it logged."""
        with self._writer.as_default():
            for name, value in scalars.items():
                self._tf.summary.scalar(name, float(value), step=int(step))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_scalars(logdir: str | Path) -> dict[str, dict[int, float]]:
    """Every scalar in the event files of ``logdir``: tag -> step -> value (last write wins).

    Files are read in name order (their names start with the creation time), so a
    step written again by a later writer shows its latest value, as TensorBoard does.
    """
    tf = runtime.import_tensorflow()
    out: dict[str, dict[int, float]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                          else float(value.simple_value))
                out.setdefault(value.tag, {})[int(event.step)] = number
    return out
