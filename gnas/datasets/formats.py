"""Readers of the file formats in the Keras cache: ``.npz``, gzipped IDX, CIFAR pickles.

``.npz`` archives are read without ``allow_pickle`` (object members only
through the restricted unpickler), IDX files are parsed by hand, and CIFAR
tarballs are read in memory, member by member, never extracted.
"""
from __future__ import annotations

import gzip
import io
import pathlib
import struct
import tarfile
import zipfile

import numpy as np

from gnas.datasets.file_errors import _file_errors
from gnas.datasets.safe_pickle import _restricted_unpickle
from gnas.errors import DataError


def _load_npz(
    path: pathlib.Path, keys: tuple[str, ...], *, objects: bool = False, optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` without ``allow_pickle``.

    Args:
        path: The archive.
        keys: Arrays that must be there.
        objects: Accept object arrays (ragged sequences in Keras' text files)
            through the restricted unpickler instead of refusing them.
        optional: Arrays read too when the archive holds them.
    """
    with open(path, "rb") as stream:  # np.load leaks its own handle on a bad zip
        archive = np.load(stream, allow_pickle=False) if zipfile.is_zipfile(stream) else None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path}: not an .npz (zip) archive; it is corrupt, or save the data "
                f"with numpy.savez({', '.join(keys)})."
            )
        return _npz_arrays(archive, path, keys, objects, optional)


def _npz_arrays(
    archive: np.lib.npyio.NpzFile, path: pathlib.Path, keys: tuple[str, ...], objects: bool,
    optional: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """The named members of an open ``.npz``, or a DataError naming those missing."""
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DataError(
                f"{path}: array(s) {', '.join(missing)} missing (found: "
                f"{', '.join(archive.files) or 'none'}); the file needs {', '.join(keys)}."
            )
        present = keys + tuple(k for k in optional if k in archive.files)
        return {k: _npz_member(archive, path, k, objects) for k in present}


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
