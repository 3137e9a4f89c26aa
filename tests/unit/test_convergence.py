"""The final training stops on the validation loss and ends on its best epoch's weights."""
from __future__ import annotations

import numpy as np
import pytest

from gnas.errors import EvaluationFailed

from test_trainer import small_dense


def _trained(learning_rate: float, max_epochs: int, patience: int, reports: list | None = None,
             **schedule):
    from gnas.backend.convergence import train_to_convergence
    from gnas.backend.trainer import compile_model

    data, arch, model = small_dense(learning_rate)
    compile_model(model, arch)
    out = train_to_convergence(model, arch, data.x_train, data.y_train, data.x_val, data.y_val,
                               max_epochs=max_epochs, patience=patience, batch_size=32,
                               report=None if reports is None else reports.append, **schedule)
    return data, arch, model, out


def test_it_stops_after_patience_epochs_without_a_new_best_and_restores_the_best():
    from gnas.backend.trainer import score

    reports: list = []
    # 160 training samples and a large step: the validation loss turns up within 60 epochs
    data, arch, model, out = _trained(0.3, 60, 3, reports)
    losses = [h["val_loss"] for h in out.history]
    assert out.stopped_early and out.epochs < 60
    assert out.epochs - out.best_epoch == 3  # exactly `patience` epochs past the best
    assert out.best_epoch == int(np.argmin(losses)) + 1 and out.val_loss == min(losses)
    assert reports == out.history and [r["epoch"] for r in reports] == list(range(1, out.epochs + 1))
    restored = score(model, arch, data.x_val, data.y_val)  # the model holds the best epoch's weights
    assert restored["loss"] == pytest.approx(out.val_loss, rel=1e-5)
    assert restored["error"] == pytest.approx(out.val_error, abs=1e-9)


def test_it_runs_to_the_last_epoch_when_the_loss_keeps_improving_and_keeps_the_best():
    data, arch, model, out = _trained(0.01, 4, 10)
    assert not out.stopped_early and out.epochs == 4
    assert out.val_loss == min(h["val_loss"] for h in out.history)


def _drops(val_losses: list[float], patience: int) -> int:
    """How often the rate drops: after ``patience`` epochs without a new best, the count restarting."""
    best, wait, drops = float("inf"), 0, 0
    for loss in val_losses:
        if loss < best:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience:
                drops, wait = drops + 1, 0
    return drops


def test_the_learning_rate_drops_on_each_plateau_and_stays_without_a_factor():
    *_, model, out = _trained(0.3, 30, 4, lr_factor=0.5, lr_patience=1)
    drops = _drops([h["val_loss"] for h in out.history], 1)
    assert drops >= 1  # a large step on 160 samples plateaus
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.3 * 0.5 ** drops, rel=1e-5)
    *_, model, out = _trained(0.3, 30, 4)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.3, rel=1e-6)


def test_a_training_that_diverges_from_the_start_fails():
    from gnas.backend.convergence import train_to_convergence
    from gnas.backend.trainer import compile_model

    data, arch, model = small_dense(1e4)
    compile_model(model, arch)
    with pytest.raises(EvaluationFailed, match="diverged"):
        train_to_convergence(model, arch, data.x_train * 1e30, data.y_train, data.x_val, data.y_val,
                             max_epochs=3, patience=2, batch_size=32)
