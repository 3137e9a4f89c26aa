"""How a damaged file fails: every read error becomes one line of :class:`DataError`.

Files are user input; a truncated archive or a corrupt pickle can raise any of
a dozen exception types deep inside NumPy, zlib or tarfile. Readers run under
:func:`_file_errors`, which names the file and says what to do.
"""
from __future__ import annotations

import contextlib
import pathlib
import pickle
import struct
import tarfile
import zipfile
import zlib
from typing import Callable, Iterator

from gnas.datasets.dataset import _Raw
from gnas.errors import DataError


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
