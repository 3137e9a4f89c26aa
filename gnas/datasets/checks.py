"""Checks of load options and of raw arrays before anything is trained on them.

Bad options or arrays (empty, mismatched, non-finite, too large for float32
training, labels out of range, too many classes, wrong sample shape) become a
one-line :class:`DataError` here rather than a failure deep inside a search
worker or a model that is silently wrong. Every source (a built-in data set, a
user's ``.npz`` or CSV, the arrays given to :func:`gnas.evolve`) goes through
these checks.
"""
from __future__ import annotations

import numpy as np

from gnas.datasets.dataset import _Raw
from gnas.errors import ConfigError, DataError

#: The largest magnitude a feature or target may have. Training is float32, and it
#: squares values (a vector column's variance in the normalisation an exported model
#: carries, the loss's squares): past ``sqrt(float32 max) ~ 1.8e19`` those overflow to
#: inf, and the model predicts one class for every input.
MAX_MAGNITUDE = 1e19
#: The most classes a classification may have (more distinct labels: a regression).
MAX_CLASSES = 1000


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
        _check_magnitude(a, label, source)


def _check_magnitude(a: np.ndarray, label: str, source: str) -> None:
    """Values float32 training can square: ``|value| <= MAX_MAGNITUDE`` (:data:`MAX_MAGNITUDE`).

    A float64 ``1e300`` is finite but infinite once cast to float32; ``1e30``
    survives the cast but its variance does not. Types that cannot reach the
    bound (8- to 32-bit integers, float16) are not scanned.
    """
    if a.dtype == object or a.size == 0 or (a.dtype.kind in "biu" and a.dtype.itemsize <= 4) \
            or (a.dtype.kind == "f" and a.dtype.itemsize <= 2):
        return
    largest = float(np.max(np.abs(a.astype(np.float64, copy=False))))
    if largest > MAX_MAGNITUDE:
        raise DataError(
            f"{source}: {label} holds values as large as {largest:.3g}; float32 training handles "
            f"magnitudes up to {MAX_MAGNITUDE:.0e} (their squares overflow beyond): rescale "
            "them (e.g. divide by a power of ten, or take a logarithm)."
        )


def _check_labels(y: np.ndarray, label: str, n_classes: int, source: str) -> None:
    """Class labels must be integers in [0, n_classes)."""
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DataError(f"{source}: {label} holds non-integer class labels; labels must be 0..K-1.")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{source}: {label} has dtype {y.dtype}; class labels must be integers.")
    low, high = y.min(), y.max()
    if low < 0:
        raise DataError(
            f"{source}: {label} holds negative class labels (received {_label(low)} to {_label(high)}); "
            "class labels must be 0..K-1: remap them (e.g. y - y.min()), or set data.task = regression."
        )
    if high >= n_classes:
        raise DataError(
            f"{source}: {label} has labels from {_label(low)} to {_label(high)}; "
            f"they must lie in 0..{n_classes - 1}."
        )


def _label(value: float) -> str:
    """A label as the user wrote it: ``4``, not ``4.0``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_class_count(ys: list[np.ndarray], source: str) -> int:
    """The class count ``max label + 1`` of integral labels, refused past :data:`MAX_CLASSES`.

    A network has one output per class, so labels such as ``0, 1e12, 2e12``
    would build trillions of outputs: they must be remapped to ``0..K-1`` first.
    """
    high = max(float(y.max()) for y in ys)
    if high + 1 > MAX_CLASSES:
        distinct = len(np.unique(np.concatenate([y.reshape(-1) for y in ys])))
        raise DataError(
            f"{source}: class labels run up to {_label(high)} ({distinct} distinct values), which "
            f"would need {_label(high + 1)} outputs (at most {MAX_CLASSES}); labels must be 0..K-1: "
            "remap them (np.unique(y, return_inverse=True)), or set data.task = regression."
        )
    return int(high) + 1


def check_family(family: str, input_shape: tuple[int, ...], source: str) -> None:
    """A conv search needs images: samples of shape (H, W, C)."""
    if family == "conv" and len(input_shape) != 3:
        raise ConfigError(
            f"space.family = conv needs images, samples of shape (H, W[, C]), but {source} holds "
            f"samples of shape {tuple(input_shape)}; use --family dense (or auto) for vectors."
        )
