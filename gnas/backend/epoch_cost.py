"""Measuring what one epoch of a typical candidate costs on this machine.

A time budget is planned from measured seconds, not guessed ones
(:mod:`gnas.search.timing`). A few typical networks of the search space (some as
generation 0 draws them, some with every stage on: the size the search grows
into) train two epochs on a slice of the
training split, grouped as the search trains them, and one of them trains two
epochs alone as the final training does. Only the second epoch is timed, from
the trainers' heartbeats, so building and tracing are left out.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import keras
import numpy as np

from gnas.backend.trainer import Heartbeat, compile_model
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.genome.space import bits_to_str
from gnas.records import EvalTask
from gnas.runs import heartbeat
from gnas.search.timing import EpochCost

SAMPLES = 256    # training samples the measurement trains on: seconds, even on large images
MEMBERS = 2      # networks of the measured group, where the caller names none


class _EpochTimer:
    """Seconds of the second epoch of a training, from its heartbeats."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.batches = 0

    def __call__(self, beat: heartbeat.Beat) -> None:
        now = time.perf_counter()
        if beat.epoch == 1 and beat.batch == beat.batches:
            self.start = now
        elif beat.epoch == 2 and beat.batch == beat.batches:
            self.end = now
            self.batches = beat.batches

    def seconds(self) -> float:
        if self.start is None or self.end is None:
            raise RuntimeError("the measured training reported no second epoch")
        return max(self.end - self.start, 1e-6)


def measure(cfg: RunConfig, dataset: Dataset, genomes: Sequence[str] = (), samples: int = SAMPLES) -> EpochCost:
    """Seconds per training sample of one epoch: of a grouped search network, and of a final training.

    ``genomes``: the typical candidates (the caller's choice: the search's as
    generation 0 draws them, then the one the final training is timed on, grown as
    the search grows them); random genomes of the space where none are given.
    Each network costs its building and tracing once, which on a loaded machine
    can take longer than its epochs: few networks keep the measurement short.
    """
    from gnas.backend.evaluator import Evaluator
    from gnas.backend.population import train_group

    began = time.perf_counter()
    n = min(samples, len(dataset.x_train))
    sliced = dataclasses.replace(dataset, x_train=dataset.x_train[:n], y_train=dataset.y_train[:n])
    evaluator = Evaluator(cfg, sliced, worker="measure")
    rng = np.random.default_rng(cfg.evolution.seed)
    genomes = list(genomes) or [bits_to_str(evaluator.space.random_bits(rng)) for _ in range(MEMBERS)]
    searched = genomes[:-1] or genomes
    tasks = [EvalTask(key=f"measure-{k}", genome=g, seed=k, epochs=2) for k, g in enumerate(searched)]
    timer = _EpochTimer()
    group_began = time.perf_counter()
    with heartbeat.listening(timer):
        train_group(evaluator, tasks)
    group_s = time.perf_counter() - group_began
    search = timer.seconds() / (len(tasks) * n)
    overhead = max(0.0, group_s - 2 * timer.seconds()) / len(tasks)  # building, tracing, scoring
    final = _final_seconds(evaluator, genomes[-1], n) / n
    return EpochCost(search=search, final=final, overhead=overhead, seconds=time.perf_counter() - began)


def _final_seconds(evaluator, genome: str, n: int) -> float:
    """The second epoch of one network trained alone with Keras' ``fit``, validation included."""
    from gnas.genome.space import str_to_bits

    arch = evaluator.space.decode(str_to_bits(genome))
    model = evaluator.build(arch, 0)
    compile_model(model, arch)
    data = evaluator.data
    batch = evaluator.batch_size(arch)
    val = max(1, n * len(data.x_val) // max(1, len(data.x_train) + len(data.x_val)))
    timer = _EpochTimer()
    with heartbeat.listening(timer):
        model.fit(data.x_train, data.y_train, batch_size=batch, epochs=2, verbose=0,
                  validation_data=(data.x_val[:val], data.y_val[:val]),
                  callbacks=[Heartbeat("measure", 2, n, batch), _EpochEnd()])
    keras.backend.clear_session()
    return timer.seconds()


class _EpochEnd(keras.callbacks.Callback):
    """A beat at the end of every epoch, after its validation, so the timer includes it."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        heartbeat.beat("measure", epoch + 1, 2, 1, 1)
