"""TensorBoard scalars per generation under ``RUN_DIR/tensorboard/``.

Every run writes them (the session wires the logger); open them with ``tensorboard --logdir RUN_DIR/tensorboard``. Each generation is one step:
best and mean fitness and validation error, population diversity, per-locus
entropy and lambda (fraction of active connection genes), evaluations so far,
failures so far and the pruned fraction.

Resuming: ``tensorboard/progress.json`` holds the last step written, and a resumed
run writes only later generations (first those of the logbook that a killed run
had not logged yet), in a new event file of the same directory. Should a process
die between writing a step and updating progress.json, that step is written
again on resume; TensorBoard then shows the later of the two (equal) values.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

from gnas.search.callbacks import Callback
from gnas.config import RunConfig
from gnas.records import EvalResult
from gnas.runs.atomic import atomic_write_text, read_json
from gnas.runs.directory import RunDir

# logbook record field -> TensorBoard tag
RECORD_TAGS = {
    "best": "fitness/best", "mean": "fitness/mean", "best_error": "error/best",
    "diversity": "population/diversity", "entropy": "population/entropy",
    "lambda": "population/lambda", "evaluations": "evaluations/total",
    "failures": "evaluations/failures",
}


def generation_scalars(record: dict[str, Any], results: Iterable[EvalResult | None] = ()) -> dict[str, float]:
    """The scalars of one generation from its logbook record and its population's results."""
    scalars = {tag: float(record[field]) for field, tag in RECORD_TAGS.items()
               if isinstance(record.get(field), (int, float)) and math.isfinite(record[field])}
    known = [r for r in results if r is not None]
    ok = [r for r in known if r.ok]
    if ok:
        scalars["error/mean"] = sum(r.val_error for r in ok) / len(ok)
    if known:
        scalars["pruning/pruned_fraction"] = sum(r.pruned_fraction for r in known) / len(known)
        scalars["population/failed_fraction"] = 1.0 - len(ok) / len(known)
    return scalars


class TensorBoardLogger(Callback):
    """Writes :func:`generation_scalars` at the end of every generation."""

    def __init__(self, run_dir: RunDir, threads: int = 0) -> None:
        self.logdir = run_dir.tensorboard_dir
        self.progress_path = self.logdir / "progress.json"
        self.threads = threads
        self._writer = None

    @property
    def last_step(self) -> int:
        try:
            return int(read_json(self.progress_path)["last_step"])
        except (OSError, ValueError, KeyError, TypeError):
            return -1

    def on_search_begin(self, search) -> None:
        """Log the checkpointed generations a previous process did not log."""
        last = self.last_step
        for record in search.state.logbook:
            if int(record.get("generation", -1)) > last:
                self._write(int(record["generation"]), generation_scalars(record))

    def on_generation_end(self, search, info) -> None:
        if info.generation <= self.last_step:
            return
        results = [search.store.lookup(k) for k in info.keys]
        self._write(info.generation, generation_scalars(info.record, results))

    def on_search_end(self, search) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, step: int, scalars: dict[str, float]) -> None:
        if self._writer is None:
            from gnas.backend.tensorboard import ScalarWriter

            self._writer = ScalarWriter(self.logdir, self.threads)
        self._writer.write(step, scalars)
        atomic_write_text(self.progress_path, json.dumps({"last_step": step}) + "\n")
