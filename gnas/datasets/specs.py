"""The catalogue of built-in data sets: names, file layouts and download origins.

One ``_Spec`` per name of :data:`DATASETS` says where the files may lie (the
Keras 2 and Keras 3 cache layouts, the original archives) and how the prepared
data set looks, so locating, downloading and checking need no per-data-set
code.
"""
from __future__ import annotations

from dataclasses import dataclass

from gnas.datasets.prepare import NUM_WORDS


DATASETS: tuple[str, ...] = (
    "digits",
    "fashion_mnist",
    "mnist",
    "cifar10",
    "cifar100",
    "boston_housing",
    "imdb",
    "reuters",
)


_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_TORONTO_ORIGIN = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class _Spec:
    """Where a built-in data set lives and how it looks once prepared.

    ``sources`` are paths relative to a search directory ("" is the directory
    itself) with the member files a directory must hold (none for a file).
    ``downloads`` are (url, destination relative to the cache, sha256).
    """

    name: str
    task: str
    kind: str
    input_shape: tuple[int, ...]
    n_classes: int
    expected: str
    sources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    downloads: tuple[tuple[str, str, str | None], ...] = ()


_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CIFAR100_FILES = ("train", "test")


def _npz_spec(name: str, task: str, shape: tuple[int, ...], n: int, sha: str) -> _Spec:
    """Spec of a data set stored as one ``<name>.npz`` in the Keras cache."""
    kind = "text" if name in ("imdb", "reuters") else ("image" if len(shape) == 3 else "vector")
    return _Spec(
        name, task, kind, shape, n, f"{name}.npz",
        sources=((f"{name}.npz", ()),),
        downloads=((f"{_KERAS_ORIGIN}{name}.npz", f"{name}.npz", sha),),
    )


def _cifar_spec(name: str, dirname: str, files: tuple[str, ...], n: int, sha: str) -> _Spec:
    """Spec of a CIFAR data set: batch directory or the tarball, Keras 2 or 3 layout."""
    tarball = f"{dirname}.tar.gz"
    origin = f"{_TORONTO_ORIGIN}{dirname.replace('-batches-py', '-python')}.tar.gz"
    sources = (
        (dirname, files),
        (f"{dirname}-target/{dirname}", files),  # Keras 3 extraction layout
        (tarball, ()),
        (origin.rsplit("/", 1)[1], ()),  # the Toronto file name
        (f"{dirname}-target_archive", ()),  # Keras 3 download name
    )
    if name == "cifar10":
        sources += (("", files),)
    expected = f"{dirname}/{files[0]} (and {len(files) - 1} more) or {tarball}"
    return _Spec(
        name, "classification", "image", (32, 32, 3), n, expected,
        sources=sources, downloads=((origin, tarball, sha),),
    )


_SPECS: dict[str, _Spec] = {
    "digits": _Spec("digits", "classification", "image", (8, 8, 1), 10, "scikit-learn"),
    "fashion_mnist": _Spec(
        "fashion_mnist", "classification", "image", (28, 28, 1), 10,
        f"fashion-mnist/{_FASHION_FILES[1]} (and 3 more)",
        sources=(("fashion-mnist", _FASHION_FILES), ("", _FASHION_FILES)),
        downloads=tuple(
            (f"{_KERAS_ORIGIN}{f}", f"fashion-mnist/{f}", None) for f in _FASHION_FILES
        ),
    ),
    "mnist": _npz_spec(
        "mnist", "classification", (28, 28, 1), 10,
        "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
    "cifar10": _cifar_spec(
        "cifar10", "cifar-10-batches-py", _CIFAR10_FILES, 10,
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    ),
    "cifar100": _cifar_spec(
        "cifar100", "cifar-100-python", _CIFAR100_FILES, 100,
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    ),
    "boston_housing": _npz_spec(
        "boston_housing", "regression", (13,), 1,
        "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
    ),
    "imdb": _npz_spec(
        "imdb", "classification", (NUM_WORDS,), 2,
        "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    ),
    "reuters": _npz_spec(
        "reuters", "classification", (NUM_WORDS,), 46,
        "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
    ),
}


def _canonical(name: str) -> str:
    """Accept ``CIFAR10`` or ``fashion-mnist`` for the canonical names."""
    return str(name).strip().lower().replace("-", "_")
