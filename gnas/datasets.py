"""Data sets for gnas: the Keras cache formats, read safely, prepared for search.

gnas reads the files that ``keras.datasets`` leaves in its cache
(``$KERAS_HOME/datasets`` or ``~/.keras/datasets``) or in ``--data-dir``, in
exactly those formats, without importing TensorFlow or Keras: a search worker
must be able to load its data in a process that has not initialised a deep
learning framework yet (and the CLI must start fast).

Every file is treated as user input. Nothing is ever unpickled with the
standard unpickler: CIFAR batches and the object arrays in ``imdb.npz`` and
``reuters.npz`` go through :func:`_restricted_unpickle`, which can only rebuild
NumPy arrays and plain containers. Archives are read in memory, never
extracted. Every problem with a file becomes a one-line :class:`DataError`.

Preparation is the same for every source so that scores are comparable:
images become float32 in [0, 1] with a channel axis, vectors are standardised
with training-split statistics, text is multi-hot over the 10,000 most frequent
words, labels are int64 and regression targets are standardised (the statistics
are kept on the :class:`Dataset` so errors can be reported in original units).
"""
from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import http.client
import io
import itertools
import os
import pathlib
import pickle
import struct
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np

from gnas.errors import DataError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "keras_cache_dir",
    "list_datasets",
    "load_dataset",
]

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

NUM_WORDS = 10_000  # multi-hot vocabulary: Keras' num_words
TEXT_INDEX_FROM = 3  # Keras' index_from: file value v is word index v + 3
TEXT_START_CHAR = 1  # Keras' start_char, prepended to every sequence
MAX_CLASSES = 1000  # an .npz with more distinct integer targets is a regression
KERAS_SPLIT_SEED = 113  # boston_housing / reuters: Keras' own test split
KERAS_TEST_SPLIT = 0.2
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed, so digits test scores compare across runs
DOWNLOAD_TIMEOUT_S = 5

_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_TORONTO_ORIGIN = "https://www.cs.toronto.edu/~kriz/"

#: Extra directories searched after the cache (Debian's fashion-mnist package).
SYSTEM_DIRS: dict[str, tuple[pathlib.Path, ...]] = {
    "fashion_mnist": (pathlib.Path("/usr/share/datasets/fashion-mnist"),),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set split three ways and prepared for training.

    ``eq=False``: the fields are arrays, so equality and hashing are by
    identity (value equality of arrays has no single truth value).
    """

    name: str
    task: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, as a model's input layer wants it."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def summary(self) -> str:
        """One line for logs and reports: name, task, shapes and classes."""
        if self.task == "regression":
            target = f"target mean {self.target_mean:.4g} std {self.target_std:.4g}"
        else:
            target = f"{self.n_classes} classes"
        return (
            f"{self.name}: {self.task} ({self.kind}), input {self.input_shape}, "
            f"train {len(self.y_train)}, val {len(self.y_val)}, "
            f"test {len(self.y_test)}, {target}"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What ``gnas datasets`` shows about one built-in data set."""

    name: str
    task: str
    kind: str
    input_shape: tuple[int, ...]
    n_classes: int
    available: bool
    where: str


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


@dataclass(frozen=True)
class _Raw:
    """Arrays as read from the files, before splitting and encoding."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


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


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def keras_cache_dir() -> pathlib.Path:
    """The directory where Keras caches data sets, so gnas shares its downloads.

    Returns:
        ``$KERAS_HOME/datasets`` when ``KERAS_HOME`` is set, else
        ``~/.keras/datasets`` (the directory need not exist).
    """
    home = os.environ.get("KERAS_HOME")
    base = pathlib.Path(home).expanduser() if home else pathlib.Path.home() / ".keras"
    return base / "datasets"


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    max_train_samples: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    """Load a built-in data set or a user ``.npz`` and prepare it for search.

    Args:
        name: One of :data:`DATASETS`, or the path of an ``.npz`` holding
            ``x_train, y_train, x_test, y_test``.
        data_dir: Directory searched before the Keras cache.
        max_train_samples: Size of the training pool (training + validation),
            drawn at random; ``None`` uses every training sample. Small pools
            make quick searches possible on big data sets.
        val_fraction: Share of the pool held out for validation (at least one
            sample); fitness is measured there, never on the test split.
        seed: Seed of the pool and validation draw (the test split is fixed).
        download: Try once to fetch missing files into the Keras cache
            (never when ``GNAS_OFFLINE=1``).

    Returns:
        The prepared :class:`Dataset`.

    Raises:
        DataError: Unknown name, missing or corrupt files, inconsistent arrays
            or bad options; the message is one line saying what to do.
    """
    _check_options(max_train_samples, val_fraction, seed)
    key = _canonical(name)
    if key in _SPECS:
        spec = _SPECS[key]
        if key == "digits":
            raw, source = _read_digits(), "digits"
        else:
            path = _find_builtin(spec, data_dir, download)
            raw, source = _read_guarded(spec.name, path, _READERS[key]), f"{spec.name} ({path})"
        _check_raw(raw, source, spec.task, spec.kind, spec.n_classes, spec.input_shape)
        meta = (spec.name, spec.task, spec.kind, spec.n_classes)
    else:
        path = _user_npz_path(name)
        raw, meta = _read_user_npz(path)
    return _prepare(*meta, raw, max_train_samples, val_fraction, seed)


def list_datasets(data_dir: str | None = None) -> list[DatasetInfo]:
    """Describe every built-in data set and whether its files are at hand.

    Nothing is downloaded: this answers "what can I run offline right now".

    Args:
        data_dir: Directory searched before the Keras cache.

    Returns:
        One :class:`DatasetInfo` per name of :data:`DATASETS`, in that order.
    """
    infos = []
    for name in DATASETS:
        spec = _SPECS[name]
        if name == "digits":
            available, where = _sklearn_available(), "bundled with scikit-learn"
        else:
            path = _locate(spec, data_dir)
            available = path is not None
            where = str(path) if path else f"expected {spec.expected} in {_where(spec, data_dir)}"
        infos.append(DatasetInfo(
            spec.name, spec.task, spec.kind, spec.input_shape, spec.n_classes, available, where,
        ))
    return infos


# --------------------------------------------------------------------------
# Options, names, locating and downloading
# --------------------------------------------------------------------------


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


def _canonical(name: str) -> str:
    """Accept ``CIFAR10`` or ``fashion-mnist`` for the canonical names."""
    return str(name).strip().lower().replace("-", "_")


def _user_npz_path(name: str) -> pathlib.Path:
    """Resolve a user ``.npz`` path, or explain which names are valid."""
    path = pathlib.Path(str(name)).expanduser()
    if path.is_file():
        return path.resolve()
    hint = "no such file" if str(name).endswith(".npz") else "unknown data set"
    raise DataError(
        f"{hint}: {name!r}. Use one of {', '.join(DATASETS)}, or the path of an "
        ".npz file with arrays x_train, y_train, x_test, y_test."
    )


def _search_dirs(data_dir: str | None) -> list[pathlib.Path]:
    """``data_dir`` first (the user's explicit choice), then the Keras cache."""
    dirs = [pathlib.Path(data_dir).expanduser()] if data_dir else []
    return dirs + [keras_cache_dir()]


def _holds(path: pathlib.Path, members: tuple[str, ...]) -> bool:
    """True if ``path`` is the file, or a directory holding every member."""
    if members:
        return path.is_dir() and all((path / m).is_file() for m in members)
    return path.is_file()


def _locate(spec: _Spec, data_dir: str | None) -> pathlib.Path | None:
    """First place that holds the data set's files, or None."""
    for root in _search_dirs(data_dir):
        for rel, members in spec.sources:
            candidate = root / rel if rel else root
            if _holds(candidate, members):
                return candidate
    members = spec.sources[0][1] if spec.sources else ()
    for directory in SYSTEM_DIRS.get(spec.name, ()):
        if _holds(directory, members):
            return directory
    return None


def _where(spec: _Spec, data_dir: str | None) -> str:
    """The searched directories, as a user would type them."""
    places = []
    if data_dir:
        missing = "" if pathlib.Path(data_dir).expanduser().is_dir() else " (does not exist)"
        places.append(f"--data-dir {data_dir}{missing}")
    places.append(str(keras_cache_dir()))
    places += [str(d) for d in SYSTEM_DIRS.get(spec.name, ())]
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " or " + places[-1]


def _offline() -> bool:
    """``GNAS_OFFLINE=1`` (or any value but 0/empty) forbids network access."""
    return os.environ.get("GNAS_OFFLINE", "").strip() not in ("", "0")


def _download(spec: _Spec) -> str | None:
    """Fetch the data set's files into the Keras cache, one attempt each.

    Returns:
        None on success, else why it failed (for the error message).
    """
    if _offline():
        return "download skipped (GNAS_OFFLINE=1)"
    cache = keras_cache_dir()
    for url, rel, sha256 in spec.downloads:
        dest = cache / rel
        if dest.is_file():
            continue
        try:
            _fetch(url, dest, sha256)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return f"download of {url} failed ({_one_line(exc) or type(exc).__name__})"
    return None


def _fetch(url: str, dest: pathlib.Path, sha256: str | None) -> None:
    """Download to a temporary file, check it, then rename: never a half file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(  # noqa: S310 (fixed https URLs)
            url, timeout=DOWNLOAD_TIMEOUT_S
        ) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise ValueError(f"checksum mismatch: sha256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _find_builtin(spec: _Spec, data_dir: str | None, download: bool) -> pathlib.Path:
    """Find (or fetch) a built-in data set's files: their path or a DataError."""
    path = _locate(spec, data_dir)
    if path is None:
        reason = _download(spec) if download else "download disabled"
        path = _locate(spec, data_dir) if reason is None else None
        if path is None:
            raise DataError(
                f"{spec.name}: files not found. Expected {spec.expected} in "
                f"{_where(spec, data_dir)}; {reason or 'downloaded files not found'}. "
                "Put the files there or pass --data-dir."
            )
    return path


_READ_ERRORS = (
    OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
    OverflowError, MemoryError, RecursionError, struct.error, zlib.error,
    zipfile.BadZipFile, tarfile.TarError, pickle.UnpicklingError,
)


def _read_guarded(name: str, path: pathlib.Path, reader: Callable[[pathlib.Path], _Raw]) -> _Raw:
    """Run a reader; any failure of a damaged file becomes a one-line DataError."""
    with _file_errors(path, f"{name}: "):
        return reader(path)


@contextlib.contextmanager
def _file_errors(path: pathlib.Path | str, prefix: str = "") -> Iterator[None]:
    """Turn the many ways a damaged file fails into one DataError naming it."""
    try:
        yield
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(
            f"{prefix}cannot read {path} ({type(exc).__name__}: {_one_line(exc)}); the file "
            "is truncated or corrupt. Delete it and download it again, or replace it."
        ) from exc


def _one_line(value: object) -> str:
    """Collapse whitespace so that an error message stays on one line."""
    return " ".join(str(value).split())


# --------------------------------------------------------------------------
# Safe unpickling
# --------------------------------------------------------------------------

_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_NP_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]
_NP_SCALAR = np.int64(0).__reduce__()[0]
_BUILTINS = (list, dict, tuple, set, frozenset, int, float, complex, bool, str, bytes, bytearray)



def _allowed_globals() -> dict[tuple[str, str], object]:
    """Every global a NumPy/builtin-only pickle may name, mapped to the object.

    Both NumPy 1 (``numpy.core``) and NumPy 2 (``numpy._core``) spellings map
    straight to this NumPy's functions, so old files load without importing
    deprecated modules; Python 2's ``__builtin__`` maps like ``builtins``.
    """
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # Python 3 bytes at protocol <= 2
    }
    for numpy_core in ("numpy.core", "numpy._core"):
        allowed[(f"{numpy_core}.multiarray", "_reconstruct")] = _NP_RECONSTRUCT
        allowed[(f"{numpy_core}.multiarray", "scalar")] = _NP_SCALAR
        allowed[(f"{numpy_core}.numeric", "_frombuffer")] = _NP_FROMBUFFER  # protocol 5
    for builtins in ("builtins", "__builtin__"):
        allowed.update({(builtins, t.__name__): t for t in _BUILTINS})
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild NumPy arrays and plain containers."""

    source = "<pickle>"

    def find_class(self, module: str, name: str) -> object:  # noqa: D102
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {self.source}: it asks for {module}.{name}, which a data "
                "file never needs; the file is corrupt or malicious. Replace it with the "
                "original download."
            ) from None

    def persistent_load(self, pid: object) -> object:  # noqa: D102
        raise DataError(f"refusing to load {self.source}: it uses persistent ids.")


def _restricted_unpickle(stream: BinaryIO, *, source: str, encoding: str = "bytes") -> object:
    """Unpickle data that may come from anyone, without running its code.

    ``pickle.load`` can call any importable function; a data file never needs
    more than NumPy's array reconstruction and builtin containers, so every
    other global is refused before it is looked up.

    Args:
        stream: Binary file positioned at the pickle.
        source: What the stream is (for error messages).
        encoding: How Python 2 ``str`` objects decode; ``"bytes"`` keeps them
            bytes (CIFAR's keys and raw array buffers).

    Returns:
        The unpickled object.

    Raises:
        DataError: The pickle asks for anything else.
    """
    unpickler = _RestrictedUnpickler(stream, encoding=encoding)
    unpickler.source = source
    return unpickler.load()


# --------------------------------------------------------------------------
# Readers, one per file format
# --------------------------------------------------------------------------


def _load_npz(path: pathlib.Path, keys: tuple[str, ...], *, objects: bool = False) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` without ``allow_pickle``.

    Args:
        path: The archive.
        keys: Arrays that must be there.
        objects: Accept object arrays (ragged sequences in Keras' text files)
            through the restricted unpickler instead of refusing them.
    """
    with open(path, "rb") as stream:  # np.load leaks its own handle on a bad zip
        archive = np.load(stream, allow_pickle=False) if zipfile.is_zipfile(stream) else None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path}: not an .npz (zip) archive; it is corrupt, or save the data "
                f"with numpy.savez({', '.join(keys)})."
            )
        return _npz_arrays(archive, path, keys, objects)


def _npz_arrays(
    archive: np.lib.npyio.NpzFile, path: pathlib.Path, keys: tuple[str, ...], objects: bool
) -> dict[str, np.ndarray]:
    """The named members of an open ``.npz``, or a DataError naming those missing."""
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DataError(
                f"{path}: array(s) {', '.join(missing)} missing (found: "
                f"{', '.join(archive.files) or 'none'}); the file needs {', '.join(keys)}."
            )
        return {k: _npz_member(archive, path, k, objects) for k in keys}


def _npz_member(archive: np.lib.npyio.NpzFile, path: pathlib.Path, key: str, objects: bool) -> np.ndarray:
    """One member of an ``.npz``; object arrays only if allowed, and only safely."""
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
    if not objects:
        raise DataError(
            f"{path}: array {key} holds Python objects, which gnas does not unpickle from "
            "user files; save plain numeric arrays with numpy.savez."
        )
    return _read_object_member(path, key)


def _read_object_member(path: pathlib.Path, key: str) -> np.ndarray:
    """Read an object-dtype ``.npy`` member of a zip with the restricted unpickler."""
    with zipfile.ZipFile(path) as archive:
        stream = io.BytesIO(archive.read(f"{key}.npy"))
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    array = _restricted_unpickle(stream, source=f"{path} ({key})", encoding="latin1")
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or not dtype.hasobject:
        raise DataError(f"{path}: array {key} does not match its .npy header; the file is corrupt.")
    return array


def _read_mnist(path: pathlib.Path) -> _Raw:
    """``mnist.npz``: uint8 (N, 28, 28) images and uint8 labels."""
    a = _load_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return _Raw(a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def _read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST family's format) of unsigned bytes."""
    with _file_errors(path), gzip.open(path, "rb") as stream:
        data = stream.read()
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: too short for an IDX header; the file is truncated.")
    zero, code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or code != 0x08 or dims != ndim:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
            f"(header {data[:4].hex()}); replace it with the original download."
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{path}: holds {array.size} bytes, its header says {shape}; the file is truncated.")
    return array.reshape(shape)


def _read_fashion(directory: pathlib.Path) -> _Raw:
    """Fashion-MNIST: four gzipped IDX files, in Keras' order."""
    y_train, x_train, y_test, x_test = (
        _read_idx(directory / f, 1 if "labels" in f else 3) for f in _FASHION_FILES
    )
    return _Raw(x_train, y_train, x_test, y_test)


def _safe_member_name(name: str, archive: pathlib.Path) -> str:
    """The base name of a tar member, refusing paths that leave the archive."""
    parts = pathlib.PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or not parts:
        raise DataError(f"refusing {archive}: member {name!r} points outside the archive.")
    return parts[-1]


def _unpickle_tar(path: pathlib.Path, wanted: tuple[str, ...]) -> dict[str, object]:
    """Unpickle the wanted members of a tarball in one pass, extracting nothing."""
    found: dict[str, object] = {}
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            base = _safe_member_name(member.name, path)
            if not member.isfile() or base not in wanted or base in found:
                continue
            source = f"{path} ({member.name})"
            with _file_errors(source):
                stream = tar.extractfile(member)
                if stream is not None:
                    found[base] = _restricted_unpickle(io.BytesIO(stream.read()), source=source)
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataError(f"{path}: member(s) {', '.join(missing)} missing; the archive is incomplete.")
    return found


def _unpickle_dir(directory: pathlib.Path, wanted: tuple[str, ...]) -> dict[str, object]:
    """Unpickle each wanted file of a batch directory."""
    found: dict[str, object] = {}
    for name in wanted:
        with _file_errors(directory / name), open(directory / name, "rb") as stream:
            found[name] = _restricted_unpickle(stream, source=str(directory / name))
    return found


def _cifar_batch(batch: object, label_key: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels from one unpickled CIFAR batch dict."""
    if not isinstance(batch, dict):
        raise DataError(f"{source}: not a CIFAR batch (a pickled dict); replace it with the original.")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise DataError(
            f"{source}: CIFAR batch without 'data' and '{label_key}'; replace it with the original."
        )
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key]).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype.kind not in "uif":
        raise DataError(f"{source}: CIFAR 'data' must be N x 3072 pixels, got {data.shape} {data.dtype}.")
    if len(labels) != len(data):
        raise DataError(f"{source}: {len(data)} images but {len(labels)} labels.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


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
    x = (np.asarray(bunch.images, np.float32) / np.float32(16.0))[..., None]
    y = np.asarray(bunch.target, np.int64)
    test = np.zeros(len(y), bool)
    test[_stratified_sample(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)] = True
    return _Raw(x[~test], y[~test], x[test], y[test])


def _stratified_sample(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of ``fraction`` of every class, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        chosen.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    return np.sort(np.concatenate(chosen))


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


# --------------------------------------------------------------------------
# User .npz files
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _check_raw(
    raw: _Raw,
    source: str,
    task: str | None,
    kind: str | None,
    n_classes: int | None,
    input_shape: tuple[int, ...] | None,
) -> None:
    """Refuse arrays that would train on garbage or fail deep inside a worker."""
    for part in ("train", "test"):
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
    if kind != "text" and raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise DataError(
            f"{source}: x_train samples have shape {raw.x_train.shape[1:]} but x_test "
            f"samples {raw.x_test.shape[1:]}; both splits need the same sample shape."
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


# --------------------------------------------------------------------------
# Splitting and encoding
# --------------------------------------------------------------------------


def _split_indices(
    n: int, max_train_samples: int | None, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: one seeded permutation, pool first.

    The pool (``max_train_samples`` of the training split) and the validation
    part of it come from the same ``default_rng(seed)`` permutation, so a seed
    fixes both and a smaller pool is a prefix of a larger one's draw.
    """
    pool = np.random.default_rng(seed).permutation(n)
    if max_train_samples is not None:
        pool = pool[: int(max_train_samples)]
    if len(pool) < 2:
        raise DataError(f"the training split has {len(pool)} sample(s); at least 2 are needed.")
    n_val = min(max(1, int(round(val_fraction * len(pool)))), len(pool) - 1)
    return pool[n_val:], pool[:n_val]


def _encode_images(x: np.ndarray) -> np.ndarray:
    """Float32 images with a channel axis; uint8 pixels scaled to [0, 1]."""
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8:
        return np.multiply(x, np.float32(1.0 / 255.0), dtype=np.float32)
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


def _standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale every column by training-split statistics (constant columns: std 1)."""
    mean, std = _stats(train, axis=0)
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


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


def _encode(kind: str, x: np.ndarray, source: str) -> np.ndarray:
    """Dispatch on the data set's kind."""
    if kind == "image":
        return _encode_images(x)
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
    set never builds the multi-hot matrix of every sample.
    """
    train, val = _split_indices(len(raw.x_train), max_train_samples, val_fraction, seed)
    xs = [_encode(kind, x, name) for x in (raw.x_train[train], raw.x_train[val], raw.x_test)]
    if kind == "vector":
        xs = list(_standardise(*xs))
    ys = [y.reshape(-1) for y in (raw.y_train[train], raw.y_train[val], raw.y_test)]
    mean, std = 0.0, 1.0
    if task == "regression":
        m, s = _stats(ys[0])
        mean, std = float(m), float(s)
        ys = [((y - mean) / std).astype(np.float32) for y in ys]
    else:
        ys = [y.astype(np.int64) for y in ys]
    return Dataset(
        name, task, kind, xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], int(n_classes), mean, std
    )
