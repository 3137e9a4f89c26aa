"""The one path check: nothing gnas writes or deletes for a run may lie outside it.

A run directory may come from someone else (a colleague's archive, a shared
disk), so nothing read from it may steer a write or a deletion elsewhere: not
a key of its database, not a symlink in place of one of gnas' own folders.
Every path gnas builds inside a run goes through :func:`inside`; the opening of
a run goes through :func:`check_managed_entries`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from gnas.errors import ConfigError, RunDirError

#: What gnas creates in a run directory (and so may write or delete there).
MANAGED = ("gnas-run.json", "config.toml", "state.json", "state.prev.json", "evaluations.db",
           "evaluations.db-wal", "evaluations.db-shm", "gnas.lock", "markov", "best", "weights",
           "fidelity", "pruning", "tensorboard", "plots", "export", "chaos.json", "summary.json",
           "data.npz", "chaos.png")

#: A genome key as gnas makes it: the first 20 hex digits of a SHA-256.
KEY_PATTERN = re.compile(r"[0-9a-f]{20}")


def is_key(value: object) -> bool:
    """Whether ``value`` has the shape of a key gnas makes (so is safe in a file name)."""
    return isinstance(value, str) and KEY_PATTERN.fullmatch(value) is not None


def inside(run: str | Path, path: str | Path, folder: str = "") -> Path:
    """``path`` (relative to ``run`` or absolute), checked to lie inside the run directory.

    The folders above the last name are resolved (symlinks followed); the last
    name is kept as it is, so removing or replacing it acts on that entry itself,
    never on what a symlink there points to. ``folder`` narrows the check to one
    of the run's folders (``fidelity``: the training states, nowhere else).

    Raises:
        RunDirError: The path leads outside ``run`` (or its ``folder``).
    """
    root = Path(run).resolve()
    within = (root / folder).resolve() if folder else root
    full = Path(run) / path
    parent = full.parent.resolve()
    if (full.name in ("", ".", "..") or root not in (within, *within.parents)
            or (parent != within and within not in parent.parents)):
        where = f"the folder {Path(run) / folder}" if folder else f"the run directory {Path(run)}"
        raise RunDirError(f"{full} leads outside {where}; the run directory "
                          "was edited. Restore it from a backup or start a new run.")
    return parent / full.name


def check_managed_entries(run: str | Path) -> None:
    """Refuse a run directory whose gnas-managed entries are symlinks leading outside it.

    A ``weights`` folder linked to another directory would otherwise have gnas
    delete and write files there.
    """
    root = Path(run).resolve()
    for name in MANAGED:
        entry = Path(run) / name
        if not entry.is_symlink():
            continue
        target = Path(os.path.realpath(entry))
        if target != root and root not in target.parents:
            raise RunDirError(f"{entry} is a symlink to {target}, outside the run directory; gnas "
                              "writes and deletes files there. Replace it with a real folder or file, "
                              "or start a new run.")


#: The folder of a run that gnas' own outputs (``gnas export`` without ``--out``) go to.
OUTPUTS = "export"


def check_output(run: str | Path, path: str | Path, option: str) -> Path:
    """Refuse an output path (``--out``, ``--evaluations``) that would replace a file of the run.

    The path is resolved through every symlink, as a write would follow them.
    Inside the run directory an output may go to :data:`OUTPUTS` or to a new
    name beside the run's own entries, never onto one of them (the database,
    the state, a folder gnas keeps); the data of a run made by ``gnas.evolve`` (``data.npz``) is one of them.

    Raises:
        ConfigError: The path lands on one of the run's files.
    """
    root = Path(run).resolve()
    target = Path(os.path.realpath(path))
    if target == root or root not in target.parents:
        return Path(path)
    first = target.relative_to(root).parts[0]
    if first == OUTPUTS and target != root / OUTPUTS:
        return Path(path)
    if first in MANAGED or first.startswith(("state.", "evaluations.db")):
        raise ConfigError(f"{option} {path} would replace {target.relative_to(root)}, one of the run's own "
                          f"files in {Path(run)}; choose a path outside the run directory, or under "
                          f"{Path(run) / OUTPUTS}.")
    return Path(path)
