"""Tests of gnas.datasets: every Keras cache format, written small and real.

The files are written here exactly as Keras (or the original authors) wrote
them: IDX headers for Fashion-MNIST, pickled dicts with bytes keys for CIFAR,
object arrays of lists for IMDB/Reuters. Writing pickles is fine in a test;
the loader must read them without ever running pickled code.
"""
from __future__ import annotations

import gzip
import io
import os
import pathlib
import pickle
import struct
import sys
import tarfile
import subprocess
import urllib.error
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnas import datasets
from gnas.datasets import DATASETS, Dataset, keras_cache_dir, list_datasets, load_dataset
from gnas.datasets import download, locate
from gnas.datasets.prepare import _split_indices
from gnas.datasets.safe_pickle import _restricted_unpickle
from gnas.datasets.specs import _FASHION_FILES
from gnas.errors import DataError

REAL_FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """No network, an empty private Keras cache, no system directories."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("GNAS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {})
    return home / "datasets"


@pytest.fixture
def data_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A --data-dir to write files into."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def assert_one_line(exc: pytest.ExceptionInfo) -> str:
    """The CLI prints a DataError on one line: check it and return the text."""
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# ---------------------------------------------------------------- writers


def write_mnist(directory: pathlib.Path, n_train: int = 60, n_test: int = 20, seed: int = 1) -> dict:
    """``mnist.npz`` as Keras ships it: uint8 (N, 28, 28) and uint8 labels."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "mnist.npz", **arrays)
    return arrays


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0x0000, type 0x08, ndim, big-endian dims."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(directory: pathlib.Path, n_train: int = 40, n_test: int = 10) -> dict:
    """The four gzipped IDX files of Fashion-MNIST."""
    rng = np.random.default_rng(2)
    arrays = {
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (directory / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def cifar_batch(n: int, first: int, label_key: str, n_classes: int) -> dict:
    """A CIFAR batch dict as the Python 2 pickles decode with encoding="bytes".

    Image i has constant planes R = i, G = i + 1, B = i + 2 (channel-first rows)
    so the test can see that the channel axis ends up last.
    """
    ids = np.arange(first, first + n)
    planes = np.stack([ids, ids + 1, ids + 2], axis=1) % 256
    data = np.repeat(planes, 1024, axis=1).astype(np.uint8)
    batch = {
        b"batch_label": b"training batch",
        label_key.encode(): [int(i % n_classes) for i in ids],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in ids],
    }
    if label_key == "fine_labels":
        batch[b"coarse_labels"] = [int(i % 20) for i in ids]
    return batch


def cifar_files(kind: str, n: int = 6) -> dict[str, bytes]:
    """Pickled batches of CIFAR-10 (six files) or CIFAR-100 (train, test)."""
    if kind == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        batches = [cifar_batch(n, k * n, "labels", 10) for k in range(6)]
    else:
        names = ["train", "test"]
        batches = [cifar_batch(5 * n, 0, "fine_labels", 100), cifar_batch(n, 500, "fine_labels", 100)]
    return {name: py2_pickle(b) for name, b in zip(names, batches)}


def write_cifar_dir(directory: pathlib.Path, kind: str, n: int = 6) -> None:
    """The extracted batch directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob in cifar_files(kind, n).items():
        (directory / name).write_bytes(blob)


def write_tar(path: pathlib.Path, members: dict[str, bytes]) -> None:
    """A .tar.gz holding the given member names and contents."""
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def object_array(sequences: list[list[int]]) -> np.ndarray:
    """A 1-D object array of Python lists, like Keras' imdb.npz / reuters.npz."""
    out = np.empty(len(sequences), dtype=object)
    for i, seq in enumerate(sequences):
        out[i] = list(seq)
    return out


def write_imdb(directory: pathlib.Path) -> None:
    """``imdb.npz``: raw word ranks (before index_from) in ragged lists."""
    x_train = object_array([[1, 2, 3], [9996, 9997, 50000], [4], [5, 5, 6], [7, 8], [1]] * 2)
    x_test = object_array([[1, 9996], [2, 3, 4, 5]])
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / "imdb.npz",
        x_train=x_train, y_train=np.array([0, 1] * 6, np.int64),
        x_test=x_test, y_test=np.array([1, 0], np.int64),
    )


def write_reuters(directory: pathlib.Path, n: int = 50) -> None:
    """``reuters.npz``: one ragged object array ``x`` and 46 topic labels ``y``."""
    rng = np.random.default_rng(3)
    x = object_array([list(rng.integers(1, 12000, rng.integers(1, 30))) for _ in range(n)])
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "reuters.npz", x=x, y=np.arange(n) % 46)


def write_boston(directory: pathlib.Path, n: int = 506) -> dict:
    """``boston_housing.npz``: float64 x (N, 13) and prices y."""
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 3.0, (n, 13))
    x[:, 3] = 1.0  # a constant column (CHAS is almost one in the real data)
    y = rng.uniform(5.0, 50.0, n)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "boston_housing.npz", x=x, y=y)
    return {"x": x, "y": y}


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the real CIFAR batches (protocol 2).

    Python 2 ``str`` (keys, raw array buffers, dtype codes) is a BINSTRING,
    and NumPy's globals live in ``numpy.core``; Python 3's pickler would write
    ``_codecs.encode`` calls and ``numpy._core`` instead.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def py2_pickle(obj: object) -> bytes:
    """``cPickle.dumps(obj, 2)`` as Python 2 would have written it."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class _Exploit:
    """Unpickling this runs ``touch MARKER``: what a hostile data file does."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------- basics


def test_public_names() -> None:
    assert DATASETS == (
        "digits", "fashion_mnist", "mnist", "cifar10", "cifar100", "boston_housing", "imdb", "reuters",
    )


def test_module_does_not_import_tensorflow_or_sklearn() -> None:
    code = (
        "import sys, gnas.datasets; "
        "assert not {'tensorflow', 'keras', 'sklearn'} & set(sys.modules), sorted(sys.modules)"
    )
    root = pathlib.Path(datasets.__file__).parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)


def test_keras_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_cache_dir() == pathlib.Path.home() / ".keras" / "datasets"


def test_digits() -> None:
    ds = load_dataset("digits")
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("classification", "image", 10, (8, 8, 1))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert abs(len(ds.y_test) - 0.2 * 1797) < 10
    assert set(np.unique(ds.y_test)) == set(range(10))
    assert "digits" in ds.summary() and "\n" not in ds.summary()


def test_digits_test_split_does_not_depend_on_seed() -> None:
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_val, b.y_val)


def test_dataset_is_frozen_and_hashable() -> None:
    ds = load_dataset("digits", max_train_samples=50)
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]
    assert ds == ds and hash(ds) == hash(ds)


# ---------------------------------------------------------------- mnist / fashion


def test_mnist_from_data_dir(data_dir: pathlib.Path) -> None:
    arrays = write_mnist(data_dir)
    ds = load_dataset("mnist", data_dir=str(data_dir), val_fraction=0.25)
    assert ds.input_shape == (28, 28, 1) and ds.kind == "image" and ds.n_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (45, 15, 20)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64
    np.testing.assert_allclose(ds.x_test[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])


def test_mnist_from_keras_home(_isolated: pathlib.Path) -> None:
    write_mnist(_isolated)
    ds = load_dataset("mnist")
    assert len(ds.y_test) == 20


def test_data_dir_is_searched_before_the_cache(_isolated: pathlib.Path, data_dir: pathlib.Path) -> None:
    write_mnist(_isolated, n_test=20)
    write_mnist(data_dir, n_test=12)
    assert len(load_dataset("mnist", data_dir=str(data_dir)).y_test) == 12


def test_fashion_mnist_in_subdirectory_and_directly(data_dir: pathlib.Path, _isolated: pathlib.Path) -> None:
    arrays = write_fashion(data_dir / "fashion-mnist")
    ds = load_dataset("fashion_mnist", data_dir=str(data_dir))
    assert ds.input_shape == (28, 28, 1) and len(ds.y_train) + len(ds.y_val) == 40
    np.testing.assert_allclose(ds.x_test[..., 0] * 255.0, arrays["t10k-images-idx3-ubyte.gz"], atol=1e-3)
    write_fashion(data_dir / "flat")
    assert len(load_dataset("fashion_mnist", data_dir=str(data_dir / "flat")).y_test) == 10
    write_fashion(_isolated / "fashion-mnist")
    assert len(load_dataset("fashion_mnist").y_test) == 10


def test_fashion_mnist_system_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    system = tmp_path / "usr-share"
    write_fashion(system)
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion_mnist": (system,)})
    assert len(load_dataset("fashion_mnist").y_test) == 10


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian fashion-mnist package not installed")
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion_mnist": (REAL_FASHION,)})
    ds = load_dataset("fashion_mnist", max_train_samples=500)
    assert ds.x_train.shape == (450, 28, 28, 1) and ds.x_val.shape == (50, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert set(np.unique(ds.y_test)) == set(range(10))
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0


def test_truncated_idx_file(data_dir: pathlib.Path) -> None:
    write_fashion(data_dir)
    blob = idx_bytes(np.zeros((40, 28, 28), np.uint8))[:-100]
    (data_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob))
    with pytest.raises(DataError) as exc:
        load_dataset("fashion_mnist", data_dir=str(data_dir))
    assert "truncated" in assert_one_line(exc)


def test_corrupt_gzip(data_dir: pathlib.Path) -> None:
    write_fashion(data_dir)
    good = (data_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    (data_dir / "t10k-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as exc:
        load_dataset("fashion_mnist", data_dir=str(data_dir))
    assert "t10k-images-idx3-ubyte.gz" in assert_one_line(exc)


# ---------------------------------------------------------------- cifar


@pytest.mark.parametrize("layout", ["dir", "keras3-dir", "tarball", "toronto-tarball"])
def test_cifar10_layouts(data_dir: pathlib.Path, layout: str) -> None:
    if layout == "dir":
        write_cifar_dir(data_dir / "cifar-10-batches-py", "cifar10")
    elif layout == "keras3-dir":
        write_cifar_dir(data_dir / "cifar-10-batches-py-target" / "cifar-10-batches-py", "cifar10")
    else:
        name = "cifar-10-batches-py.tar.gz" if layout == "tarball" else "cifar-10-python.tar.gz"
        members = {f"cifar-10-batches-py/{k}": v for k, v in cifar_files("cifar10").items()}
        members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"cat"]})
        write_tar(data_dir / name, members)
    ds = load_dataset("cifar10", data_dir=str(data_dir), val_fraction=0.2)
    assert ds.input_shape == (32, 32, 3) and ds.n_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (24, 6, 6)
    # test image i (ids 30..35) has planes R = i, G = i + 1, B = i + 2
    expected = np.stack([np.arange(30, 36) + c for c in range(3)], axis=1) / 255.0
    np.testing.assert_allclose(ds.x_test[:, 5, 7, :], expected, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, np.arange(30, 36) % 10)


def test_cifar10_written_with_python3_protocol(data_dir: pathlib.Path) -> None:
    directory = data_dir / "cifar-10-batches-py"
    directory.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        batch = {key.decode(): value for key, value in cifar_batch(6, 6 * k, "labels", 10).items()}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert len(load_dataset("cifar10", data_dir=str(data_dir)).y_test) == 6


@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar100(data_dir: pathlib.Path, _isolated: pathlib.Path, as_tar: bool) -> None:
    if as_tar:
        _isolated.mkdir(parents=True)
        members = {f"cifar-100-python/{k}": v for k, v in cifar_files("cifar100").items()}
        write_tar(_isolated / "cifar-100-python.tar.gz", members)
    else:
        write_cifar_dir(_isolated / "cifar-100-python", "cifar100")
    ds = load_dataset("cifar100")
    assert ds.n_classes == 100 and ds.input_shape == (32, 32, 3)
    assert len(ds.y_train) + len(ds.y_val) == 30 and len(ds.y_test) == 6
    np.testing.assert_array_equal(ds.y_test, np.arange(500, 506) % 100)  # fine, not coarse


def test_malicious_pickle_is_refused_and_not_run(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    directory = data_dir / "cifar-10-batches-py"
    write_cifar_dir(directory, "cifar10")
    marker = tmp_path / "pwned"
    (directory / "data_batch_1").write_bytes(pickle.dumps({b"data": _Exploit(marker)}))
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=str(data_dir))
    text = assert_one_line(exc)
    assert "system" in text and "data_batch_1" in text
    assert not marker.exists()


def test_malicious_pickle_in_tarball(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    members = {f"cifar-10-batches-py/{k}": v for k, v in cifar_files("cifar10").items()}
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(_Exploit(marker), protocol=0)
    write_tar(data_dir / "cifar-10-batches-py.tar.gz", members)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=str(data_dir))
    assert_one_line(exc)
    assert not marker.exists()


def test_tar_member_escaping_the_archive_is_refused(data_dir: pathlib.Path) -> None:
    members = {f"cifar-10-batches-py/{k}": v for k, v in cifar_files("cifar10").items()}
    members["../../evil/data_batch_1"] = b"x"
    write_tar(data_dir / "cifar-10-batches-py.tar.gz", members)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=str(data_dir))
    assert "outside" in assert_one_line(exc)
    assert not (data_dir.parent.parent / "evil").exists()


def test_tarball_missing_a_batch(data_dir: pathlib.Path) -> None:
    members = {f"cifar-10-batches-py/{k}": v for k, v in cifar_files("cifar10").items()}
    del members["cifar-10-batches-py/data_batch_3"]
    write_tar(data_dir / "cifar-10-batches-py.tar.gz", members)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=str(data_dir))
    assert "data_batch_3" in assert_one_line(exc)


def test_truncated_cifar_batch(data_dir: pathlib.Path) -> None:
    directory = data_dir / "cifar-10-batches-py"
    write_cifar_dir(directory, "cifar10")
    blob = (directory / "data_batch_2").read_bytes()
    (directory / "data_batch_2").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=str(data_dir))
    assert "data_batch_2" in assert_one_line(exc)


def test_restricted_unpickle_allows_arrays_only() -> None:
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        back = _restricted_unpickle(io.BytesIO(pickle.dumps({"a": array, "b": [1, 2]}, protocol)), source="t")
        np.testing.assert_array_equal(back["a"], array)
    with pytest.raises(DataError):
        _restricted_unpickle(io.BytesIO(pickle.dumps(pathlib.Path("/"))), source="t")


# ---------------------------------------------------------------- text


def test_imdb_multi_hot_follows_keras_conventions(data_dir: pathlib.Path) -> None:
    write_imdb(data_dir)
    ds = load_dataset("imdb", data_dir=str(data_dir))
    assert (ds.kind, ds.n_classes, ds.input_shape) == ("text", 2, (10_000,))
    assert ds.x_test.dtype == np.float32 and set(np.unique(ds.x_train)) <= {0.0, 1.0}
    first, second = ds.x_test  # file rows [1, 9996] and [2, 3, 4, 5]
    assert np.flatnonzero(first).tolist() == [1, 4, 9999]  # start char, 1+3, 9996+3
    assert np.flatnonzero(second).tolist() == [1, 5, 6, 7, 8]
    np.testing.assert_array_equal(ds.y_test, [1, 0])
    assert ds.x_train[:, [0, 2]].sum() == 0  # padding and OOV columns stay empty


def test_imdb_out_of_vocabulary_words_are_dropped(data_dir: pathlib.Path) -> None:
    write_imdb(data_dir)
    ds = load_dataset("imdb", data_dir=str(data_dir), val_fraction=0.5)
    rows = np.concatenate([ds.x_train, ds.x_val])
    # the row [9996, 9997, 50000] keeps only 9996 + 3 = 9999
    assert any(np.flatnonzero(r).tolist() == [1, 9999] for r in rows)


def test_imdb_written_by_python2_numpy(data_dir: pathlib.Path) -> None:
    """Object members pickled the Python 2 way (as the Keras files were made)."""
    arrays = {
        "x_train": object_array([[1, 2], [3], [4, 5, 6]]), "y_train": np.array([0, 1, 0]),
        "x_test": object_array([[7], [8, 9]]), "y_test": np.array([1, 1]),
    }
    with zipfile.ZipFile(data_dir / "imdb.npz", "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            if array.dtype == object:
                header = {"descr": "|O", "fortran_order": False, "shape": array.shape}
                np.lib.format.write_array_header_1_0(member, header)
                member.write(py2_pickle(array))
            else:
                np.lib.format.write_array(member, array)
            archive.writestr(f"{key}.npy", member.getvalue())
    ds = load_dataset("imdb", data_dir=str(data_dir))
    assert np.flatnonzero(ds.x_test[1]).tolist() == [1, 11, 12]


def test_reuters_uses_keras_split(data_dir: pathlib.Path) -> None:
    write_reuters(data_dir, n=50)
    ds = load_dataset("reuters", data_dir=str(data_dir))
    assert ds.n_classes == 46 and len(ds.y_test) == 10 and len(ds.y_train) + len(ds.y_val) == 40
    indices = np.arange(50)
    np.random.RandomState(113).shuffle(indices)
    np.testing.assert_array_equal(ds.y_test, (np.arange(50) % 46)[indices][40:])


def test_malicious_object_array_in_npz(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = [1, 2], _Exploit(marker)
    np.savez(data_dir / "reuters.npz", x=evil, y=np.array([0, 1]))
    with pytest.raises(DataError) as exc:
        load_dataset("reuters", data_dir=str(data_dir))
    assert_one_line(exc)
    assert not marker.exists()


def test_max_train_samples_limits_text_encoding(data_dir: pathlib.Path) -> None:
    write_reuters(data_dir, n=50)
    ds = load_dataset("reuters", data_dir=str(data_dir), max_train_samples=10)
    assert ds.x_train.shape == (9, 10_000) and ds.x_val.shape == (1, 10_000)


# ---------------------------------------------------------------- boston


def test_boston_housing_split_and_standardisation(data_dir: pathlib.Path) -> None:
    raw = write_boston(data_dir)
    ds = load_dataset("boston_housing", data_dir=str(data_dir), seed=3)
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("regression", "vector", 1, (13,))
    assert len(ds.y_test) == 102 and len(ds.y_train) + len(ds.y_val) == 404
    assert ds.y_train.dtype == np.float32 and ds.x_train.dtype == np.float32
    # Keras' split: RandomState(113) shuffle, last 20 % is test
    indices = np.arange(506)
    np.random.RandomState(113).shuffle(indices)
    y_test = raw["y"][indices][404:]
    np.testing.assert_allclose(ds.y_test * ds.target_std + ds.target_mean, y_test, rtol=1e-5)
    # statistics come from the final training part only
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.delete(ds.x_train.std(axis=0), 3), 1.0, atol=1e-4)
    np.testing.assert_array_equal(ds.x_train[:, 3], 0.0)  # constant column: std taken as 1
    assert abs(float(ds.y_train.mean())) < 1e-5 and abs(float(ds.y_train.std()) - 1.0) < 1e-4
    assert abs(float(ds.x_val.mean())) > 1e-7  # val is scaled with train statistics, not its own


# ---------------------------------------------------------------- splitting


def test_split_is_deterministic_per_seed(data_dir: pathlib.Path) -> None:
    write_mnist(data_dir, n_train=100)
    a = load_dataset("mnist", data_dir=str(data_dir), seed=5)
    b = load_dataset("mnist", data_dir=str(data_dir), seed=5)
    c = load_dataset("mnist", data_dir=str(data_dir), seed=6)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_val, c.x_val)
    np.testing.assert_array_equal(a.x_test, c.x_test)


def test_max_train_samples(data_dir: pathlib.Path) -> None:
    write_mnist(data_dir, n_train=100)
    ds = load_dataset("mnist", data_dir=str(data_dir), max_train_samples=30, val_fraction=0.1)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 20)
    ds = load_dataset("mnist", data_dir=str(data_dir), max_train_samples=10**9)
    assert len(ds.y_train) + len(ds.y_val) == 100
    ds = load_dataset("mnist", data_dir=str(data_dir), max_train_samples=2)
    assert (len(ds.y_train), len(ds.y_val)) == (1, 1)


@pytest.mark.parametrize(
    "options", [{"max_train_samples": 1}, {"max_train_samples": 0}, {"max_train_samples": 2.5},
                {"val_fraction": 0.0}, {"val_fraction": 1.0}, {"seed": -1}],
)
def test_bad_options(options: dict) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("digits", **options)
    assert_one_line(exc)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 500),
    limit=st.one_of(st.none(), st.integers(2, 600)),
    fraction=st.floats(0.001, 0.999),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_indices_properties(n: int, limit: int | None, fraction: float, seed: int) -> None:
    train, val = _split_indices(n, limit, fraction, seed)
    pool = n if limit is None else min(n, limit)
    assert len(train) + len(val) == pool and len(val) >= 1 and len(train) >= 1
    assert len(set(train.tolist()) | set(val.tolist())) == pool
    assert 0 <= min(train.min(), val.min()) and max(train.max(), val.max()) < n


# ---------------------------------------------------------------- user .npz


def test_user_npz_image_classification(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (30, 12, 10), dtype=np.uint8), y_train=np.arange(30) % 3,
             x_test=rng.integers(0, 256, (6, 12, 10), dtype=np.uint8), y_test=np.arange(6) % 3)
    ds = load_dataset(str(path))
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("classification", "image", 3, (12, 10, 1))
    assert ds.x_train.max() <= 1.0


def test_user_npz_vector_regression_and_integral_float_labels(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "reg.npz"
    np.savez(path, x_train=rng.normal(size=(40, 5)), y_train=rng.normal(size=40),
             x_test=rng.normal(size=(8, 5)), y_test=rng.normal(size=(8, 1)))
    ds = load_dataset(str(path))
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("regression", "vector", 1, (5,))
    assert ds.y_test.shape == (8,)
    path = tmp_path / "cls.npz"
    np.savez(path, x_train=rng.normal(size=(40, 5)), y_train=(np.arange(40) % 4).astype(float),
             x_test=rng.normal(size=(8, 5)), y_test=np.zeros(8))
    ds = load_dataset(str(path))
    assert (ds.task, ds.n_classes, ds.y_train.dtype) == ("classification", 4, np.int64)


def _bad_npz(tmp_path: pathlib.Path, **overrides: np.ndarray) -> pathlib.Path:
    arrays = {"x_train": np.zeros((10, 3)), "y_train": np.arange(10) % 2,
              "x_test": np.zeros((4, 3)), "y_test": np.arange(4) % 2}
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"y_test": None}, "y_test"),
        ({"y_train": np.arange(9) % 2}, "y_train"),
        ({"x_train": np.full((10, 3), np.nan)}, "NaN"),
        ({"y_test": np.array([0.5, 1.5, np.inf, 2.0])}, "NaN"),
        ({"y_train": np.array([0, 1, -1, 0, 1, 0, 1, 0, 1, 0])}, "labels"),
        ({"x_test": np.zeros((4, 5))}, "shape"),
        ({"x_train": np.array(["a"] * 10)}, "numeric"),
        ({"x_train": np.zeros((10, 1, 2, 3, 4, 5))}, "dimensions"),
    ],
)
def test_bad_user_npz(tmp_path: pathlib.Path, overrides: dict, words: str) -> None:
    path = _bad_npz(tmp_path, **overrides)
    with pytest.raises(DataError) as exc:
        load_dataset(str(path))
    text = assert_one_line(exc)
    assert words in text and "bad.npz" in text


def test_user_npz_with_objects_is_refused(tmp_path: pathlib.Path) -> None:
    path = _bad_npz(tmp_path, x_train=object_array([[1]] * 10))
    with pytest.raises(DataError) as exc:
        load_dataset(str(path))
    assert "objects" in assert_one_line(exc)


def test_corrupt_npz(data_dir: pathlib.Path) -> None:
    (data_dir / "mnist.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", data_dir=str(data_dir))
    assert "mnist.npz" in assert_one_line(exc)


def test_builtin_with_wrong_labels(data_dir: pathlib.Path) -> None:
    arrays = write_mnist(data_dir)
    arrays["y_test"][0] = 12
    np.savez(data_dir / "mnist.npz", **arrays)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", data_dir=str(data_dir))
    assert "0..9" in assert_one_line(exc)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("imagenet")
    text = assert_one_line(exc)
    assert all(name in text for name in DATASETS)
    with pytest.raises(DataError) as exc:
        load_dataset("/nonexistent/x.npz")
    assert "no such file" in assert_one_line(exc)


# ---------------------------------------------------------------- missing files, downloads


@pytest.mark.parametrize(
    "name, file", [("mnist", "mnist.npz"), ("fashion_mnist", "train-images-idx3-ubyte.gz"),
                   ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                   ("boston_housing", "boston_housing.npz"), ("imdb", "imdb.npz"), ("reuters", "reuters.npz")],
)
def test_missing_files_offline(name: str, file: str, data_dir: pathlib.Path, _isolated: pathlib.Path) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(name, data_dir=str(data_dir))
    text = assert_one_line(exc)
    assert file in text and str(data_dir) in text and str(_isolated) in text and "GNAS_OFFLINE" in text


def test_download_into_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, _isolated: pathlib.Path) -> None:
    source = tmp_path / "server"
    write_fashion(source)
    requested = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        requested.append((url, timeout))
        return io.BytesIO((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.delenv("GNAS_OFFLINE")
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
    ds = load_dataset("fashion_mnist")
    assert len(ds.y_test) == 10 and len(requested) == 4
    assert all(u.startswith("https://storage.googleapis.com/tensorflow/tf-keras-datasets/") for u, _ in requested)
    assert all(t == 5 for _, t in requested)
    assert sorted(p.name for p in (_isolated / "fashion-mnist").iterdir()) == sorted(_FASHION_FILES)


def test_download_failure_and_checksum(monkeypatch: pytest.MonkeyPatch, _isolated: pathlib.Path) -> None:
    def unreachable(url: str, timeout: float) -> io.BytesIO:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv("GNAS_OFFLINE")
    monkeypatch.setattr(download.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist")
    assert "download of https://storage.googleapis.com" in assert_one_line(exc)
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not mnist"))
    with pytest.raises(DataError) as exc:
        load_dataset("mnist")
    assert "checksum" in assert_one_line(exc)
    assert not (_isolated / "mnist.npz").exists() and list(_isolated.iterdir()) == []


def test_download_disabled(_isolated: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GNAS_OFFLINE")
    monkeypatch.setattr(download.urllib.request, "urlopen", pytest.fail)
    with pytest.raises(DataError) as exc:
        load_dataset("imdb", download=False)
    assert "download disabled" in assert_one_line(exc)


def test_list_datasets(data_dir: pathlib.Path) -> None:
    write_mnist(data_dir)
    infos = {i.name: i for i in list_datasets(str(data_dir))}
    assert tuple(infos) == DATASETS
    assert infos["digits"].available and infos["mnist"].available
    assert infos["mnist"].where == str(data_dir / "mnist.npz")
    assert not infos["cifar10"].available and "cifar-10-batches-py" in infos["cifar10"].where
    assert infos["cifar10"].input_shape == (32, 32, 3) and infos["reuters"].n_classes == 46
    assert infos["boston_housing"].task == "regression"


def test_summary_of_regression(data_dir: pathlib.Path) -> None:
    write_boston(data_dir)
    line = load_dataset("boston_housing", data_dir=str(data_dir)).summary()
    assert "regression" in line and "target mean" in line and "\n" not in line
    assert isinstance(load_dataset("digits"), Dataset)
