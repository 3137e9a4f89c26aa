"""CPU inference latency of saved models, measured side by side in one process.

Latency depends on the machine and on what else runs on it, so a before/after
comparison is only fair when both models are timed in the same process, in
alternating rounds: a load spike then hits both alike. The figure is the median
over rounds of the wall time of one forward pass of a fixed batch.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

BATCH = 256
ROUNDS = 20


def median_latency_ms(paths: Sequence[Path], batch: int = BATCH, rounds: int = ROUNDS,
                      seed: int = 0) -> list[float]:
    """Median milliseconds per batch of ``batch`` samples for each saved model, in order.

    The input is random (latency does not depend on the values); every model sees
    the same array, shaped by the first model's input.
    """
    models = [keras.models.load_model(p, compile=False) for p in paths]
    shape = tuple(models[0].input_shape[1:])
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype("float32")
    for m in models:  # warm-up: tracing and first-call allocation are not latency
        m(x, training=False)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for k, m in enumerate(models):
            start = time.perf_counter()
            np.asarray(m(x, training=False))
            times[k].append(1000.0 * (time.perf_counter() - start))
    return [statistics.median(t) for t in times]
