"""One's own data given instead of a built-in name: an ``.npz``, a CSV or an image folder.

The name decides the reader: a directory is an image folder
(:mod:`~gnas.datasets.image_folder`), a name ending in ``.csv`` (or
``.csv:<target column>``) a CSV (:mod:`~gnas.datasets.user_csv`), any other
existing file an ``.npz`` (:mod:`~gnas.datasets.user_npz`).
"""
from __future__ import annotations

import pathlib

from gnas.datasets.dataset import _Raw
from gnas.datasets.file_errors import _file_errors
from gnas.datasets.image_folder import _read_image_folder
from gnas.datasets.specs import DATASETS
from gnas.datasets.user_csv import _read_user_csv, split_csv_name
from gnas.datasets.user_npz import _read_user_npz
from gnas.errors import DataError


def _read_user_source(name: str, task: str = "auto") -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read one's own data: the raw arrays and (name, task, kind, classes).

    ``task`` is ``"auto"`` (inferred from the targets), ``"classification"``
    or ``"regression"``; an image folder is always a classification.
    """
    csv_name = split_csv_name(name)
    path = _user_path(csv_name[0] if csv_name else name)
    with _file_errors(path, f"{path.name}: "):
        if path.is_dir():
            if task == "regression":
                raise DataError(f"{path}: an image folder is a classification (one sub-folder per "
                                "class); leave data.task at auto.")
            return _read_image_folder(path)
        if csv_name is not None:
            return _read_user_csv(path, csv_name[1], task)
    return _read_user_npz(path, task)


def _user_path(name: str) -> pathlib.Path:
    """Resolve the path of one's own file or folder, or explain which names are valid."""
    path = pathlib.Path(str(name)).expanduser()
    if path.exists():
        return path.resolve()
    hint = "no such file" if pathlib.PurePath(str(name)).suffix in (".npz", ".csv") else "unknown data set"
    raise DataError(
        f"{hint}: {name!r}. Use one of {', '.join(DATASETS)}, the path of an .npz with arrays "
        "x_train, y_train, x_test, y_test, a CSV (file.csv or file.csv:<target column>), "
        "or an image folder with one sub-folder per class."
    )
