"""One's own data given instead of a built-in name: an ``.npz``, a CSV or an image folder.

The name decides the reader: a directory is an image folder
(:mod:`~gnas.datasets.image_folder`), a name ending in ``.csv`` (or
``.csv:<target column>``) a CSV (:mod:`~gnas.datasets.user_csv`), any other
existing file an ``.npz`` (:mod:`~gnas.datasets.user_npz`).
"""
from __future__ import annotations

import pathlib

from gnas.datasets.dataset import _Raw
from gnas.datasets.specs import DATASETS
from gnas.datasets.user_npz import _read_user_npz
from gnas.errors import DataError


def _read_user_source(name: str) -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read one's own data: the raw arrays and (name, task, kind, classes)."""
    path = _user_path(name)
    return _read_user_npz(path)


def _user_path(name: str) -> pathlib.Path:
    """Resolve the path of one's own file or folder, or explain which names are valid."""
    path = pathlib.Path(str(name)).expanduser()
    if path.exists():
        return path.resolve()
    hint = "no such file" if str(name).endswith(".npz") else "unknown data set"
    raise DataError(
        f"{hint}: {name!r}. Use one of {', '.join(DATASETS)}, or the path of an "
        ".npz file with arrays x_train, y_train, x_test, y_test."
    )
