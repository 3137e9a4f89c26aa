"""Train a model with SGD + momentum and score it on the validation split."""
from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from gnas.genome.architecture import Architecture
from gnas.errors import EvaluationFailed
from gnas.runs import clock, heartbeat


MAX_LOSS = 1e6
"""A training loss above this has diverged even while it is finite.

A cross-entropy of a few units or a mean squared error of standardised targets
near 1 is a training; 1e6 (losses of 5e24 were seen) is a network whose weights
blew up, and its validation error says nothing about the architecture.
"""


def loss_diverged(loss: Any) -> Any:
    """Whether a loss is one of a diverged training: not finite, or above :data:`MAX_LOSS`.

    The one place that decides, for the one-at-a-time ``fit`` (a float), the
    exact-graph group and the dense superset (a tensor, elementwise, inside
    their traced steps) and every validation score.
    """
    if isinstance(loss, (int, float, np.floating)):
        return not (math.isfinite(loss) and loss <= MAX_LOSS)
    return keras.ops.logical_not(keras.ops.logical_and(keras.ops.isfinite(loss),
                                                       keras.ops.less_equal(loss, MAX_LOSS)))


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first diverged loss (non-finite or huge), silently.

    Keras' ``TerminateOnNaN`` prints to stdout, which would break the progress bar
    and the summary; divergence is reported once, as the evaluation's failure reason.
    """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and loss_diverged(float(loss)):
            self.model.stop_training = True


class Heartbeat(keras.callbacks.Callback):
    """Tells the progress where a Keras ``fit`` stands, at most every :data:`heartbeat.SLICE_S` seconds.

    ``fit`` returns to Python after every batch, so an interrupt lands there
    anyway; this makes a long epoch visible as it goes.
    """

    def __init__(self, what: str, epochs: int, samples: int, batch_size: int) -> None:
        super().__init__()
        self.what, self.epochs = what, epochs
        self.batches = max(1, -(-samples // max(1, batch_size)))
        self.epoch = 0
        self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1
        heartbeat.beat(self.what, self.epoch, self.epochs, 0, self.batches)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= heartbeat.SLICE_S or batch + 1 == self.batches:
            self._last = now
            heartbeat.beat(self.what, self.epoch, self.epochs, batch + 1, self.batches)


class StopAtDeadline(keras.callbacks.Callback):
    """Stop a training at the run's deadline (``evolution.max_seconds``) less what scoring and
    saving the delivered model take, after the current batch.

    The epoch in progress is then scored as it stands; a final training keeps
    its best epoch so far.
    """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if clock.training_passed():
            self.model.stop_training = True


def compile_model(model: keras.Model, arch: Architecture, learning_rate: float | None = None) -> None:
    """SGD with the individual's own learning rate and momentum (paper Table I)."""
    opt = keras.optimizers.SGD(learning_rate=learning_rate or arch.learning_rate,
                               momentum=arch.momentum)
    if arch.task == "classification":
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile(optimizer=opt, loss="mse", metrics=["mae"])


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
        steps: int | None = None) -> float:
    """Train; raise EvaluationFailed when the loss diverges. Returns the last loss.

    ``steps`` bounds the number of optimiser steps (the pruner's fine-tuning cycles).
    """
    if steps:
        n = min(len(x), steps * batch_size)
        history = model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    else:
        history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                            callbacks=[StopOnNaN(), Heartbeat("1 network", epochs, len(x), batch_size)])
    loss = float(history.history["loss"][-1])
    if loss_diverged(loss):
        raise EvaluationFailed(diverged_reason(loss, float(model.optimizer.learning_rate.numpy())))
    return loss


def diverged_reason(loss: float, learning_rate: float, which: str = "loss") -> str:
    """The failure reason of a diverged training (:func:`loss_diverged`), whichever path trained it.

    ``which`` names the loss that showed it: the training ``loss`` or the
    ``validation loss``.
    """
    return f"training diverged ({which} {loss:.6g}) at learning rate {learning_rate:.3g}"


def validation_diverged(loss: float, error: float) -> bool:
    """Whether a validation score shows a diverged training: its loss diverged or its error is not finite.

    One rule for the one-at-a-time scorer and both group paths.
    """
    return bool(loss_diverged(loss)) or not math.isfinite(error)


def score(model: keras.Model, arch: Architecture, x: np.ndarray, y: np.ndarray,
          batch_size: int = 256) -> dict[str, Any]:
    """Error E on a split: 1 - accuracy, or MAE in target standard deviations (regression).

    Regression targets are stored standardised with training statistics, so the MAE
    of the scaled targets is already 'MAE divided by the standard deviation'.
    """
    values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    loss = float(values["loss"])
    if arch.task == "classification":
        error = 1.0 - float(values["accuracy"])
    else:
        error = float(values["mae"])
    if validation_diverged(loss, error):
        raise EvaluationFailed(diverged_reason(loss, float(np.float32(arch.learning_rate)),
                                               "validation loss"))
    return {"error": error, "loss": loss}
