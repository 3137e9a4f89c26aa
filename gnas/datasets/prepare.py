"""Preparation shared by every source: split, encode, standardise.

Images become float32 in [0, 1] with a channel axis, vectors are standardised
with training-split statistics, text is multi-hot over the 10,000 most
frequent words, labels are int64 and regression targets are standardised (the
statistics are kept on the :class:`Dataset`), so scores compare across
sources.
"""
from __future__ import annotations

import itertools

import numpy as np

from gnas.datasets.dataset import Dataset, _Raw
from gnas.datasets.file_errors import _one_line
from gnas.errors import DataError


NUM_WORDS = 10_000  # multi-hot vocabulary: Keras' num_words
TEXT_INDEX_FROM = 3  # Keras' index_from: file value v is word index v + 3
TEXT_START_CHAR = 1  # Keras' start_char, prepended to every sequence


def _split_indices(
    n: int, max_train_samples: int | None, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: one seeded permutation, pool first.

    The pool (``max_train_samples`` of the training split) and the validation
    part of it come from the same ``default_rng(seed)`` permutation, so a seed
    fixes both and a smaller pool is a prefix of a larger one's draw.
    """
    pool = _pool(n, max_train_samples, seed)
    if len(pool) < 2:
        raise DataError(f"the training split has {len(pool)} sample(s); at least 2 are needed.")
    n_val = min(max(1, int(round(val_fraction * len(pool)))), len(pool) - 1)
    return pool[n_val:], pool[:n_val]


def _pool(n: int, max_train_samples: int | None, seed: int) -> np.ndarray:
    """The training pool: the first ``max_train_samples`` of a ``default_rng(seed)`` permutation."""
    pool = np.random.default_rng(seed).permutation(n)
    return pool if max_train_samples is None else pool[: int(max_train_samples)]


def _split(
    raw: _Raw, max_train_samples: int | None, val_fraction: float, seed: int
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Raw (train, validation, test) inputs and targets.

    A validation split the source brings is used as is (``val_fraction`` is then
    unused); otherwise one is carved out of the pool by :func:`_split_indices`.
    """
    if raw.x_val is not None and raw.y_val is not None:
        train = _pool(len(raw.x_train), max_train_samples, seed)
        x_val, y_val = raw.x_val, raw.y_val
    else:
        train, val = _split_indices(len(raw.x_train), max_train_samples, val_fraction, seed)
        x_val, y_val = raw.x_train[val], raw.y_train[val]
    return (raw.x_train[train], x_val, raw.x_test), (raw.y_train[train], y_val, raw.y_test)


def pixel_scale(x: np.ndarray, declared: float | None) -> float:
    """What raw pixels are multiplied by: the reader's word, else 1/255 for uint8, else 1."""
    if declared is not None:
        return float(declared)
    return 1.0 / 255.0 if x.dtype == np.uint8 else 1.0


def _encode_images(x: np.ndarray, scale: float) -> np.ndarray:
    """Float32 images with a channel axis, pixels times ``scale`` in float32.

    ``x * float32(scale)`` is the arithmetic of Keras' ``Rescaling``, so an
    exported model that starts with that layer sees the same inputs.
    """
    if x.ndim == 3:
        x = x[..., None]
    if scale != 1.0:
        return np.multiply(x, np.float32(scale), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _encode_vectors(x: np.ndarray) -> np.ndarray:
    """Float32 rows of features (a 1-D array is one feature per sample)."""
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


def _multi_hot(sequences: np.ndarray) -> np.ndarray:
    """Keras ``num_words=10000, oov_char=None`` sequences as multi-hot rows.

    A file value ``v`` is word index ``v + 3`` (Keras' ``index_from``); every
    sequence starts with ``start_char`` 1; indices >= 10,000 are dropped.
    """
    out = np.zeros((len(sequences), NUM_WORDS), np.float32)
    lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
    flat = np.fromiter(itertools.chain.from_iterable(sequences), np.int64, int(lengths.sum()))
    if flat.size and flat.min() < 0:
        raise DataError(f"text data holds a negative word index ({flat.min()}); the file is corrupt.")
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = flat + TEXT_INDEX_FROM
    keep = cols < NUM_WORDS
    out.reshape(-1)[rows[keep] * NUM_WORDS + cols[keep]] = 1.0
    out[:, TEXT_START_CHAR] = 1.0
    return out


def input_stats(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 per-column mean and std of the training split (constant columns: std 1).

    Computed in float64 and rounded once to float32: these are the values a
    Keras ``Normalization`` layer holds, so a model carrying them standardises
    raw inputs bit for bit as :func:`standardise` does.
    """
    mean, std = _stats(train, axis=0)
    # Keras' Normalization divides by max(sqrt(variance), 1e-7): clamp alike.
    return mean.astype(np.float32), np.maximum(std.astype(np.float32), np.float32(1e-7))


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` in float32, the arithmetic of Keras' ``Normalization``."""
    return np.divide(np.subtract(np.asarray(x, np.float32), mean), std, dtype=np.float32)


def _stats(a: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation in float64, std of (numerically) constant data = 1."""
    a64 = np.asarray(a, np.float64)
    mean, std = a64.mean(axis=axis), a64.std(axis=axis)
    std = np.where(std > 1e-8 * (1.0 + np.abs(mean)), std, 1.0)
    return mean, std


def _encode_text(sequences: np.ndarray, source: str) -> np.ndarray:
    """Multi-hot text, turning malformed sequences into a DataError."""
    try:
        return _multi_hot(sequences)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{source}: text data must be sequences of word indices ({_one_line(exc)}); "
            "the file is corrupt."
        ) from exc


def _encode(kind: str, x: np.ndarray, source: str, scale: float) -> np.ndarray:
    """Dispatch on the data set's kind."""
    if kind == "image":
        return _encode_images(x, scale)
    if kind == "text":
        return _encode_text(x, source)
    return _encode_vectors(x)


def _prepare(
    name: str,
    task: str,
    kind: str,
    n_classes: int,
    raw: _Raw,
    max_train_samples: int | None,
    val_fraction: float,
    seed: int,
) -> Dataset:
    """Split, encode and standardise raw arrays into a :class:`Dataset`.

    The pool is drawn before encoding so that a small pool of a big text data
    set never builds the multi-hot matrix of every sample. Every statistic
    (input and target standardisation) comes from the training part alone.
    """
    raw_xs, raw_ys = _split(raw, max_train_samples, val_fraction, seed)
    scale = pixel_scale(raw.x_train, raw.pixel_scale) if kind == "image" else 1.0
    xs = [_encode(kind, x, name, scale) for x in raw_xs]
    x_mean = x_std = None
    if kind == "vector":
        x_mean, x_std = input_stats(xs[0])
        xs = [standardise(x, x_mean, x_std) for x in xs]
    ys = [y.reshape(-1) for y in raw_ys]
    mean, std = 0.0, 1.0
    if task == "regression":
        m, s = _stats(ys[0])
        mean, std = float(m), float(s)
        ys = [((y - mean) / std).astype(np.float32) for y in ys]
    else:
        ys = [y.astype(np.int64) for y in ys]
    return Dataset(
        name, task, kind, xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], int(n_classes), mean, std,
        x_mean, x_std, scale, tuple(int(d) for d in raw.x_train.shape[1:]) if kind == "image" else None,
        raw.class_names,
    )
