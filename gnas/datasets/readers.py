"""One reader per built-in data set, returning its train and test arrays.

Each reader turns the files of one data set into a ``_Raw`` with Keras'
train/test split (Keras' own seeded split where the file holds one array;
a fixed stratified split for scikit-learn's digits). scikit-learn is imported
only inside :func:`_read_digits`.
"""
from __future__ import annotations

import pathlib
from typing import Callable

import numpy as np

from gnas.datasets.dataset import _Raw
from gnas.datasets.held_out import held_out
from gnas.datasets.formats import _cifar_batch, _load_npz, _read_idx, _unpickle_dir, _unpickle_tar
from gnas.datasets.specs import _CIFAR10_FILES, _CIFAR100_FILES, _FASHION_FILES
from gnas.errors import DataError


KERAS_SPLIT_SEED = 113  # boston_housing / reuters: Keras' own test split
KERAS_TEST_SPLIT = 0.2
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed, so digits test scores compare across runs


def _read_mnist(path: pathlib.Path) -> _Raw:
    """``mnist.npz``: uint8 (N, 28, 28) images and uint8 labels."""
    a = _load_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return _Raw(a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def _read_fashion(directory: pathlib.Path) -> _Raw:
    """Fashion-MNIST: four gzipped IDX files, in Keras' order."""
    y_train, x_train, y_test, x_test = (
        _read_idx(directory / f, 1 if "labels" in f else 3) for f in _FASHION_FILES
    )
    return _Raw(x_train, y_train, x_test, y_test)


def _read_cifar(path: pathlib.Path, files: tuple[str, ...], label_key: str) -> _Raw:
    """CIFAR-10/100 from the batch directory or straight from the tarball."""
    batches = _unpickle_dir(path, files) if path.is_dir() else _unpickle_tar(path, files)
    parts = [_cifar_batch(batches[f], label_key, f"{path} ({f})") for f in files]
    train, test = parts[:-1], parts[-1]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return _Raw(x_train, y_train, test[0], test[1])


def _keras_split(x: np.ndarray, y: np.ndarray) -> _Raw:
    """Keras' own train/test split (shuffle with seed 113, last 20 % is test)."""
    indices = np.arange(len(x))
    np.random.RandomState(KERAS_SPLIT_SEED).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - KERAS_TEST_SPLIT))
    return _Raw(x[:cut], y[:cut], x[cut:], y[cut:])


def _read_boston(path: pathlib.Path) -> _Raw:
    """``boston_housing.npz``: (506, 13) features ``x`` and prices ``y``."""
    a = _load_npz(path, ("x", "y"))
    return _keras_split(a["x"], a["y"])


def _read_imdb(path: pathlib.Path) -> _Raw:
    """``imdb.npz``: object arrays of word-rank lists, already split."""
    a = _load_npz(path, ("x_train", "y_train", "x_test", "y_test"), objects=True)
    return _Raw(a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def _read_reuters(path: pathlib.Path) -> _Raw:
    """``reuters.npz``: one object array ``x`` of word-rank lists, labels ``y``."""
    a = _load_npz(path, ("x", "y"), objects=True)
    return _keras_split(a["x"], a["y"])


def _read_digits() -> _Raw:
    """scikit-learn's bundled 8x8 digits, with a fixed stratified test split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("digits: scikit-learn is not installed; pip install scikit-learn.") from exc
    bunch = load_digits()
    x = np.asarray(bunch.images, np.float32)  # scikit-learn's own 0..16 images; prepare scales
    y = np.asarray(bunch.target, np.int64)
    test = np.zeros(len(y), bool)
    test[held_out(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)] = True
    return _Raw(x[~test], y[~test], x[test], y[test], pixel_scale=1.0 / 16.0)


def _sklearn_available() -> bool:
    """Whether scikit-learn (hence ``digits``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


_READERS: dict[str, Callable[[pathlib.Path], _Raw]] = {
    "mnist": _read_mnist,
    "fashion_mnist": _read_fashion,
    "cifar10": lambda p: _read_cifar(p, _CIFAR10_FILES, "labels"),
    "cifar100": lambda p: _read_cifar(p, _CIFAR100_FILES, "fine_labels"),
    "boston_housing": _read_boston,
    "imdb": _read_imdb,
    "reuters": _read_reuters,
}
