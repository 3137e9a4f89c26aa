"""CPU inference latency of saved models, measured side by side in one process.

Latency depends on the machine and on what else runs on it, so a before/after
comparison is only fair when both models are timed in the same process, in
alternating rounds: a load spike then hits both alike.

What is timed is the model's forward pass traced once with ``tf.function``,
not ``model.predict`` or an eager call: those add a few milliseconds of Python
and Keras dispatch per call, the same for a large and a small network, which
hides what pruning saves. Two figures per model, medians over the rounds:

* ``latency_ms``: one call on a batch of :data:`BATCH` samples, and from it
  ``latency_us_per_sample`` (the throughput figure, where a smaller network
  shows);
* ``latency_ms_one``: one call on a single sample (the per-request figure,
  where the fixed cost of a call still weighs).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

BATCH = 256
ROUNDS = 50
BUDGET_S = 10.0  # fewer rounds (at least MIN_ROUNDS) when the models are slow
MIN_ROUNDS = 5


def median_latency(paths: Sequence[Path], batch: int = BATCH, rounds: int = ROUNDS,
                   seed: int = 0) -> list[dict[str, float]]:
    """Per saved model, in order: median ms per batch call, µs per sample, ms per one-sample call.

    The input is random (latency does not depend on the values); every model sees
    the same array, shaped by the first model's input.
    """
    models = [keras.models.load_model(p, compile=False) for p in paths]
    x = tf.constant(_random_input(models[0], batch, seed))
    one = x[:1]
    calls = [tf.function(lambda v, m=m: m(v, training=False)) for m in models]
    for call in calls:  # warm-up: tracing both shapes and first-call allocation are not latency
        np.asarray(call(x))
        np.asarray(call(one))
    start = time.perf_counter()
    for call in calls:
        np.asarray(call(x))
        np.asarray(call(one))
    per_round = max(time.perf_counter() - start, 1e-6)
    rounds = max(MIN_ROUNDS, min(rounds, int(BUDGET_S / per_round)))
    many: list[list[float]] = [[] for _ in models]
    single: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for k, call in enumerate(calls):
            t0 = time.perf_counter()
            np.asarray(call(x))
            t1 = time.perf_counter()
            np.asarray(call(one))
            t2 = time.perf_counter()
            many[k].append(1000.0 * (t1 - t0))
            single[k].append(1000.0 * (t2 - t1))
    out = []
    for k in range(len(models)):
        ms = statistics.median(many[k])
        out.append({"latency_ms": ms, "latency_us_per_sample": 1000.0 * ms / batch,
                    "latency_ms_one": statistics.median(single[k]), "latency_batch": batch,
                    "latency_rounds": rounds})
    return out


def _random_input(model: keras.Model, batch: int, seed: int) -> np.ndarray:
    """A batch shaped and typed as the model's input: floats, or word indices for text.

    A text model's sequence length is free (``None``); 200 words is a review's size.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(d or 200 for d in model.input_shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(1, 10_000, (batch, *shape)).astype("int32")
    return rng.standard_normal((batch, *shape)).astype("float32")
