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

Candidates: every network the search trains is one session of TensorBoard's
HParams dashboard, under ``tensorboard/hparams/KEY/``: its hyper-parameters
(:func:`candidate_hparams`) and its metrics ``val_error`` and ``fitness``. The
protocol buffers come from the ``tensorboard`` package alone (no TensorFlow), and
each session is one event file written whole and renamed into place, so a killed
run leaves either all of a candidate or none, and a resume writes only the others.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from gnas.search.callbacks import Callback
from gnas.config import RunConfig
from gnas.genome.architecture import Architecture
from gnas.genome.space import str_to_bits
from gnas.records import EvalResult, Kind
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


# ------------------------------------------------------------- HParams
HPARAMS_DIR = "hparams"
METRICS = ("val_error", "fitness")


def candidate_hparams(arch: Architecture, result: EvalResult) -> dict[str, float | int | str]:
    """The hyper-parameters of one trained network, as the HParams table shows them."""
    return {"learning_rate": float(arch.learning_rate), "momentum": float(arch.momentum),
            "stages": len(arch.stages), "widths": "-".join(str(s.width) for s in arch.stages) or "-",
            "params": int(result.params), "status": str(result.status)}


def candidate_metrics(result: EvalResult, fitness: float) -> dict[str, float]:
    """``val_error`` and ``fitness`` of one network; a non-finite one is left out."""
    values = {"val_error": result.val_error, "fitness": fitness}
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}


class HParamsWriter:
    """One HParams session per candidate under ``logdir/hparams``, plus the experiment's columns."""

    def __init__(self, logdir: Path) -> None:
        self.dir = Path(logdir) / HPARAMS_DIR

    def write(self, key: str, hparams: dict[str, Any], metrics: dict[str, float]) -> bool:
        """Write candidate ``key`` unless it is already there; True when written."""
        from tensorboard.plugins.hparams import summary_v2 as hp
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb

        if _has_events(self.dir / key):
            return False
        if not _has_events(self.dir):
            columns = [hp.HParam(name) for name in hparams]
            _write_events(self.dir, [hp.hparams_config_pb(columns, [hp.Metric(m) for m in METRICS])])
        session = hp.hparams_pb(hparams, trial_id=key, start_time_secs=time.time())
        _write_events(self.dir / key, [session, *(scalar_pb(m, v) for m, v in metrics.items())])
        return True


def _has_events(directory: Path) -> bool:
    return any(directory.glob("events.out.tfevents.*"))


def _write_events(directory: Path, summaries: list) -> None:
    """One event file of ``summaries`` at step 0, written whole, then renamed into place.

    The temporary name has no ``tfevents`` in it, so TensorBoard never reads a half file.
    """
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    tmp = directory / ".events.tmp"
    with open(tmp, "wb") as fh:
        records = RecordWriter(fh)
        records.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            records.write(event_pb2.Event(wall_time=now, step=0, summary=summary).SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.gnas")


class TensorBoardLogger(Callback):
    """Writes :func:`generation_scalars` at the end of every generation and each candidate's HParams."""

    def __init__(self, run_dir: RunDir, threads: int = 0) -> None:
        self.logdir = run_dir.tensorboard_dir
        self.progress_path = self.logdir / "progress.json"
        self.threads = threads
        self._writer = None
        self.hparams = HParamsWriter(self.logdir)

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

    def on_evaluated(self, search, result: EvalResult, cached: bool) -> None:
        """A network the search trained becomes one HParams session (once per key)."""
        if cached or result.kind != Kind.SEARCH or not result.genome:
            return
        arch = search.space.decode(str_to_bits(result.genome))
        self.hparams.write(result.key, candidate_hparams(arch, result),
                           candidate_metrics(result, search.fitness_model.fitness(result)))

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
