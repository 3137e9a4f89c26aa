"""The final training: the chosen network trained until its validation loss stops improving.

A search scores candidates after a few epochs, which is enough to rank them
and far from enough to deliver one: a winner kept at its search weights is
under-trained. Once the search has chosen, its network is trained again from
its initial weights for up to ``final.max_epochs`` epochs, with early stopping
on the validation loss (``final.patience`` epochs without a new best), and the
weights of the best epoch are restored, as Keras' ``EarlyStopping`` with
``restore_best_weights`` does but also when training ran to its last epoch or
diverged after its best. The validation split then chose an epoch, so its
error is no longer held out; the test split still decides nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np

from gnas.backend.trainer import Heartbeat, StopAtDeadline, diverged_reason, loss_diverged
from gnas.errors import EvaluationFailed
from gnas.genome.architecture import Architecture

#: Called after every epoch with ``{"epoch", "loss", "val_loss", "val_error", "best_epoch"}``.
EpochReport = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Converged:
    """What a final training did: epochs trained, the epoch kept, and every epoch's scores."""

    epochs: int
    best_epoch: int
    val_error: float
    val_loss: float
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "val_error": self.val_error,
                "val_loss": self.val_loss, "stopped_early": self.stopped_early, "history": self.history}


class _KeepBest(keras.callbacks.Callback):
    """Early stopping on the validation loss that always ends on the best epoch's weights."""

    def __init__(self, task: str, patience: int, report: EpochReport | None,
                 after_step: Callable[[keras.Model], None] | None) -> None:
        super().__init__()
        self.task, self.patience, self.report, self.after_step = task, patience, report, after_step
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.history: list[dict[str, float]] = []
        self.diverged: float | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.after_step is not None:
            self.after_step(self.model)
        loss = (logs or {}).get("loss")
        if loss is not None and loss_diverged(float(loss)):
            self.diverged = float(loss)
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        val_loss = float(logs.get("val_loss", math.nan))
        metric = logs.get("val_accuracy") if self.task == "classification" else logs.get("val_mae")
        val_error = (1.0 - float(metric)) if self.task == "classification" else float(metric)
        if self.diverged is None and loss_diverged(val_loss):
            self.diverged = val_loss
        if self.diverged is None and val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch + 1
            self.best_weights = [w.copy() for w in self.model.get_weights()]
        entry = {"epoch": epoch + 1, "loss": float(logs.get("loss", math.nan)), "val_loss": val_loss,
                 "val_error": val_error, "best_epoch": self.best_epoch}
        self.history.append(entry)
        if self.report is not None:
            self.report(entry)
        if self.diverged is not None or epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True


def train_to_convergence(model: keras.Model, arch: Architecture, x: np.ndarray, y: np.ndarray,
                         x_val: np.ndarray, y_val: np.ndarray, *, max_epochs: int, patience: int,
                         batch_size: int, report: EpochReport | None = None,
                         after_step: Callable[[keras.Model], None] | None = None,
                         lr_factor: float = 0.0, lr_patience: int = 2) -> Converged:
    """Train a compiled model until the validation loss has not improved for ``patience`` epochs.

    Args:
        model: Compiled, at its initial weights (the caller seeds and builds it).
        arch: Its architecture (the task decides the validation error).
        x, y, x_val, y_val: Training and validation splits.
        max_epochs: Upper bound on the epochs trained.
        patience: Epochs without a new best validation loss before stopping.
        batch_size: The search's batch size for this network.
        report: Called after every epoch (progress).
        after_step: Called after every optimiser step (a pruned network's masks).
        lr_factor: With ``0 < lr_factor < 1``, the learning rate is multiplied by it
            after ``lr_patience`` epochs without a new best validation loss
            (Keras' ``ReduceLROnPlateau``): SGD at the search's constant rate
            stalls above the loss a smaller step reaches.
        lr_patience: Epochs without a new best before the rate drops.

    Returns:
        The epochs trained and the best epoch, whose weights the model now holds.

    Raises:
        EvaluationFailed: No epoch ended with a finite validation loss.
    """
    keep = _KeepBest(arch.task, patience, report, after_step)
    callbacks: list[keras.callbacks.Callback] = [keep, Heartbeat("final training", max_epochs,
                                                                 len(x), batch_size), StopAtDeadline()]
    if 0.0 < lr_factor < 1.0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=lr_factor,
                                                           patience=lr_patience, min_delta=0.0))
    model.fit(x, y, batch_size=batch_size, epochs=max_epochs, verbose=0, shuffle=True,
              validation_data=(x_val, y_val), callbacks=callbacks)
    if keep.best_weights is None:
        loss = keep.diverged if keep.diverged is not None else math.nan
        raise EvaluationFailed(diverged_reason(loss, float(np.float32(arch.learning_rate))))
    model.set_weights(keep.best_weights)
    best = keep.history[keep.best_epoch - 1]
    return Converged(epochs=len(keep.history), best_epoch=keep.best_epoch, val_error=best["val_error"],
                     val_loss=best["val_loss"], stopped_early=len(keep.history) < max_epochs,
                     history=keep.history)
