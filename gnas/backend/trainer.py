"""Train a model with SGD + momentum and score it on the validation split."""
from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from gnas.genome.architecture import Architecture
from gnas.errors import EvaluationFailed


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first non-finite loss, silently.

    Keras' ``TerminateOnNaN`` prints to stdout, which would break the progress bar
    and the summary; divergence is reported once, as the evaluation's failure reason.
    """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
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
                            callbacks=[StopOnNaN()])
    loss = float(history.history["loss"][-1])
    if not math.isfinite(loss):
        raise EvaluationFailed(diverged_reason(loss, float(model.optimizer.learning_rate.numpy())))
    return loss


def diverged_reason(loss: float, learning_rate: float) -> str:
    """The failure reason of a training whose loss went non-finite, whichever path trained it."""
    return f"training diverged (loss {loss}) at learning rate {learning_rate:.3g}"


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
    if not (math.isfinite(loss) and math.isfinite(error)):
        raise EvaluationFailed(f"non-finite validation loss {loss}")
    return {"error": error, "loss": loss}
