"""A user's own ``.npz``: read like ``mnist.npz``, task and class count inferred.

The file must hold ``x_train, y_train, x_test, y_test``; integral targets
with few distinct values make a classification, anything else a regression.
"""
from __future__ import annotations

import pathlib

import numpy as np

from gnas.datasets.checks import _check_labels, _check_raw
from gnas.datasets.dataset import _Raw
from gnas.datasets.file_errors import _read_guarded
from gnas.datasets.readers import _read_mnist
from gnas.errors import DataError


MAX_CLASSES = 1000  # an .npz with more distinct integer targets is a regression


def _read_user_npz(path: pathlib.Path) -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read a user ``.npz`` and infer task, kind and class count from it."""
    raw = _read_guarded(path.name, path, _read_mnist)  # same four arrays, pickles refused
    for label, x in (("x_train", raw.x_train), ("x_test", raw.x_test)):
        if x.ndim > 4:
            raise DataError(f"{path}: {label} has {x.ndim} dimensions; use (N, features) or (N, H, W[, C]).")
    _check_raw(raw, str(path), None, None, None, None)
    task = _infer_task(raw.y_train, raw.y_test)
    kind = "image" if raw.x_train.ndim >= 3 else "vector"
    n_classes = 1
    if task == "classification":
        n_classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
        _check_labels(raw.y_train, "y_train", n_classes, str(path))
        _check_labels(raw.y_test, "y_test", n_classes, str(path))
        if n_classes < 2:
            raise DataError(f"{path}: every label is 0; classification needs at least two classes.")
    return raw, (str(path), task, kind, n_classes)


def _infer_task(y_train: np.ndarray, y_test: np.ndarray) -> str:
    """Integral targets with few distinct values are classes; the rest is regression."""
    y = np.concatenate([y_train.reshape(-1), y_test.reshape(-1)])
    integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
    return "classification" if integral and len(np.unique(y)) <= MAX_CLASSES else "regression"
