"""The restricted unpickler: NumPy arrays and plain containers, nothing else.

CIFAR batches and the object arrays in ``imdb.npz`` and ``reuters.npz`` are
pickles, and every file is treated as user input, so nothing is ever loaded
with the standard unpickler; :func:`_restricted_unpickle` refuses every global
a data file does not need before it is looked up.
"""
from __future__ import annotations

import codecs
import pickle
from typing import BinaryIO

import numpy as np

from gnas.errors import DataError


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
