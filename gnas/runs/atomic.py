"""Atomic file writes: temporary file, fsync, rename, fsync of the directory.

Every file in a run directory is replaced this way, so a run killed at any
moment leaves either the old or the new version of each file, never half of one.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

_DURABLE = contextvars.ContextVar("gnas_durable_writes", default=True)


@contextlib.contextmanager
def durability(durable: bool) -> Iterator[None]:
    """Whether the atomic writes of the code inside also fsync (survive a power cut).

    Every write stays atomic either way (temporary file, rename): a killed process
    leaves the old or the new file. A run whose evaluations are table lookups
    turns the fsyncs off: they were most of its time, and a power cut costs it
    generations that a resume or a new run repeats in a second.
    """
    token = _DURABLE.set(durable)
    try:
        yield
    finally:
        _DURABLE.reset(token)


def sync(fd: int) -> None:
    """``os.fsync(fd)``, unless the writes in progress are not durable (:func:`durability`)."""
    if _DURABLE.get():
        os.fsync(fd)


def atomic_write_text(path: Path, text: str, *, before_rename: Callable[[], None] | None = None) -> None:
    """Write ``text`` to a temporary file in the same directory, fsync, then rename.

    A reader (or a crash) sees either the old file or the new one, never half.
    ``before_rename`` runs between the fsync and the rename (a test fault point).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(text)
            fh.flush()
            sync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


#: A temporary name of :func:`atomic_write_text`: ``.NAME.PID-RANDOM.tmp``.
_TEMP = re.compile(r"\..+\.(?P<pid>[0-9]+)-[A-Za-z0-9_]+\.tmp")


def remove_dead_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write_text` whose writer is no longer running.

    For folders several processes write in (the calibration cache): a write in
    progress is left alone, one whose process was killed is removed. Only this
    module's temporary names, and only regular files, are ever touched.
    """
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match and entry.is_file() and not entry.is_symlink() and not _alive(int(match["pid"])):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    if not _DURABLE.get():
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing, unreadable or damaged.

    For files that can be rebuilt or done without (summaries, progress marks);
    checkpoints have their own checked reader (``gnas.runs.state``).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
