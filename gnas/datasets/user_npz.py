"""A user's own ``.npz``: read like ``mnist.npz``, task and class count inferred.

The file must hold ``x_train, y_train, x_test, y_test`` and may hold a
validation split ``x_val, y_val`` (both or neither), used instead of one
carved out of the training split. Integral targets with few distinct values
make a classification, anything else a regression.
"""
from __future__ import annotations

import pathlib
from typing import Mapping

import numpy as np

from gnas.datasets.checks import MAX_CLASSES, _check_labels, _check_raw, check_class_count
from gnas.datasets.dataset import _Raw
from gnas.datasets.file_errors import _read_guarded
from gnas.datasets.formats import _load_npz
from gnas.errors import DataError


_KEYS = ("x_train", "y_train", "x_test", "y_test")
_VAL_KEYS = ("x_val", "y_val")


def _read_npz_arrays(path: pathlib.Path) -> _Raw:
    """The four arrays, and the validation pair when the file holds both."""
    a = _load_npz(path, _KEYS, optional=_VAL_KEYS)  # pickles refused
    given = [k for k in _VAL_KEYS if k in a]
    if len(given) == 1:
        other = _VAL_KEYS[1 - _VAL_KEYS.index(given[0])]
        raise DataError(
            f"{path}: holds {given[0]} but not {other}; a validation split needs both "
            f"(save {other} too, or drop {given[0]} to carve one out of the training split)."
        )
    return _Raw(a["x_train"], a["y_train"], a["x_test"], a["y_test"],
                x_val=a.get("x_val"), y_val=a.get("y_val"))


def _read_user_npz(path: pathlib.Path, task: str = "auto") -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read a user ``.npz``; its task (unless given), kind and class count from the arrays."""
    raw = _read_guarded(path.name, path, _read_npz_arrays)
    task, n_classes = _check_user_raw(raw, str(path), task)
    kind = "image" if raw.x_train.ndim >= 3 else "vector"
    return raw, (str(path), task, kind, n_classes)


def check_arrays(arrays: Mapping[str, np.ndarray], source: str, task: str = "auto") -> None:
    """Check in-memory arrays (``x_train, y_train, x_test, y_test[, x_val, y_val]``) as a
    user ``.npz`` holding them is checked; messages name ``source`` and the arrays.

    :func:`gnas.evolve` calls this before it writes its ``data.npz``, so a
    refusal names what the caller passed, never a file of gnas's own.
    """
    raw = _Raw(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
               x_val=arrays.get("x_val"), y_val=arrays.get("y_val"))
    _check_user_raw(raw, source, task)


def _check_user_raw(raw: _Raw, source: str, task: str) -> tuple[str, int]:
    """Every check of one's own arrays; the task (unless given) and class count."""
    for part in raw.parts():
        x = getattr(raw, f"x_{part}")
        if x.ndim > 4:
            raise DataError(f"{source}: x_{part} has {x.ndim} dimensions; use (N, features) or (N, H, W[, C]).")
    _check_raw(raw, source, None, None, None, None)
    return _infer_classes(raw, source, task)


def _infer_classes(raw: _Raw, source: str, task: str = "auto") -> tuple[str, int]:
    """Task (inferred when ``"auto"``) and class count of checked arrays; labels checked against it."""
    ys = [getattr(raw, f"y_{part}") for part in raw.parts()]
    task = _infer_task(*ys) if task == "auto" else task
    if task == "regression":
        return task, 1
    n_classes = check_class_count(ys, source)
    for part, y in zip(raw.parts(), ys):
        _check_labels(y, f"y_{part}", n_classes, source)
    if n_classes < 2:
        raise DataError(f"{source}: every label is 0; classification needs at least two classes.")
    return task, n_classes


def _infer_task(*ys: np.ndarray) -> str:
    """Integral targets with few distinct values are classes; the rest is regression."""
    y = np.concatenate([y.reshape(-1) for y in ys])
    integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
    return "classification" if integral and len(np.unique(y)) <= MAX_CLASSES else "regression"
