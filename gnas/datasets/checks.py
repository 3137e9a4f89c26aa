"""Checks of load options and of raw arrays before anything is trained on them.

Bad options or arrays (empty, mismatched, non-finite, labels out of range,
wrong sample shape) become a one-line :class:`DataError` here rather than a
failure deep inside a search worker.
"""
from __future__ import annotations

import numpy as np

from gnas.datasets.dataset import _Raw
from gnas.errors import DataError


def _check_options(max_train_samples: int | None, val_fraction: float, seed: int) -> None:
    """Refuse options that would give an empty or meaningless split."""
    if max_train_samples is not None and (
        isinstance(max_train_samples, bool)
        or not isinstance(max_train_samples, (int, np.integer))
        or max_train_samples < 2
    ):
        raise DataError(
            f"max_train_samples must be an integer >= 2 or None (all), got {max_train_samples!r}."
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.floating)) or not (
        0.0 < float(val_fraction) < 1.0
    ):
        raise DataError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}.")


def _check_raw(
    raw: _Raw,
    source: str,
    task: str | None,
    kind: str | None,
    n_classes: int | None,
    input_shape: tuple[int, ...] | None,
) -> None:
    """Refuse arrays that would train on garbage or fail deep inside a worker."""
    for part in raw.parts():
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        _check_pair(x, y, part, source)
        if kind not in (None, "text"):
            shape = x.shape[1:] + ((1,) if x.ndim == 3 else ())
            if input_shape is not None and shape != input_shape:
                raise DataError(
                    f"{source}: x_{part} samples have shape {x.shape[1:]}, expected {input_shape}."
                )
        if task == "classification" and n_classes is not None:
            _check_labels(y, f"y_{part}", n_classes, source)
    for part in raw.parts()[1:]:
        x = getattr(raw, f"x_{part}")
        if kind != "text" and raw.x_train.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{source}: x_train samples have shape {raw.x_train.shape[1:]} but x_{part} "
                f"samples {x.shape[1:]}; every split needs the same sample shape."
            )


def _check_pair(x: np.ndarray, y: np.ndarray, part: str, source: str) -> None:
    """Matching lengths, non-empty, numeric and finite."""
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{source}: x_{part} is empty; it needs one row per sample.")
    if y.ndim == 0 or len(y) != len(x) or y.size != len(y):
        raise DataError(
            f"{source}: x_{part} has {len(x)} samples but y_{part} has shape {y.shape}; "
            "give one target per sample."
        )
    for label, a in ((f"x_{part}", x), (f"y_{part}", y)):
        if a.dtype != object and a.dtype.kind not in "biuf":
            raise DataError(f"{source}: {label} has dtype {a.dtype}; it must be numeric.")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise DataError(
                f"{source}: {label} contains NaN or infinite values; clean or drop those samples."
            )


def _check_labels(y: np.ndarray, label: str, n_classes: int, source: str) -> None:
    """Class labels must be integers in [0, n_classes)."""
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DataError(f"{source}: {label} holds non-integer class labels; labels must be 0..K-1.")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{source}: {label} has dtype {y.dtype}; class labels must be integers.")
    low, high = y.min(), y.max()
    if low < 0 or high >= n_classes:
        raise DataError(
            f"{source}: {label} has labels from {low} to {high}; they must lie in 0..{n_classes - 1}."
        )
