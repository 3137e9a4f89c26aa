"""Where data set files are looked for: ``--data-dir``, the Keras cache, system directories.

The search order is the user's ``data_dir`` first, then the directory Keras
caches downloads in (so gnas and Keras share files), then the system
directories of :data:`SYSTEM_DIRS`.
"""
from __future__ import annotations

import os
import pathlib

from gnas.datasets.specs import _Spec


#: Extra directories searched after the cache (Debian's fashion-mnist package).
SYSTEM_DIRS: dict[str, tuple[pathlib.Path, ...]] = {
    "fashion_mnist": (pathlib.Path("/usr/share/datasets/fashion-mnist"),),
}


def keras_cache_dir() -> pathlib.Path:
    """The directory where Keras caches data sets, so gnas shares its downloads.

    Returns:
        ``$KERAS_HOME/datasets`` when ``KERAS_HOME`` is set, else
        ``~/.keras/datasets`` (the directory need not exist).
    """
    home = os.environ.get("KERAS_HOME")
    base = pathlib.Path(home).expanduser() if home else pathlib.Path.home() / ".keras"
    return base / "datasets"


def _system_dirs(name: str) -> tuple[pathlib.Path, ...]:
    """The system directories searched for ``name``."""
    return SYSTEM_DIRS.get(name, ())


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
    for directory in _system_dirs(spec.name):
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
    places += [str(d) for d in _system_dirs(spec.name)]
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " or " + places[-1]
