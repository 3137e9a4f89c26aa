"""Calibrations kept between runs, so the same data and space are swept once.

A run's calibration of ``lambda_c`` costs seconds to tens of seconds, and it
measures the same thing every time: its outcome depends only on the probed
networks (the search space and weight scale, and how generation 0 is drawn:
growth), the seed, and the real inputs pushed through them. The key is a hash of exactly
those and of :data:`VERSION`, which changes whenever the probe or the sweep
would measure differently, so a kept calibration is the one a new sweep would
make.

The files are JSON records as ``RUN_DIR/chaos.json`` holds them, one per key,
in ``$GNAS_CACHE_DIR`` (``off`` or empty: no cache), else
``$XDG_CACHE_HOME/gnas/chaos``, else ``~/.cache/gnas/chaos``. A missing,
damaged or foreign file is measured afresh; a cache that cannot be written
costs the run nothing but the next sweep.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gnas.runs.atomic import atomic_write_text, remove_dead_temp_files

log = logging.getLogger(__name__)

CACHE_ENV = "GNAS_CACHE_DIR"
#: Bump when the probe, the sweep or the verdict would give another result for the same key.
VERSION = 1
# what a record keeps of one run only, dropped before it is shared with later runs
RUN_ONLY = ("png",)


def cache_dir() -> Path | None:
    """Where kept calibrations live, or None when ``$GNAS_CACHE_DIR`` turns the cache off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off") else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "gnas" / "chaos"


def calibration_key(fingerprint: str, *, seed: int, growth: bool,
                    inputs: Sequence[np.ndarray]) -> str:
    """A hash of everything a run's calibration depends on.

    ``fingerprint`` covers the search space and weight scale
    (:func:`gnas.chaos.calibration.space_fingerprint`); ``inputs`` are the very
    batches the sweep pushes through its networks.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": VERSION, "space": fingerprint, "seed": int(seed),
                              "growth": bool(growth)}, sort_keys=True).encode())
    for x in inputs:
        x = np.ascontiguousarray(x, dtype=np.float32)
        digest.update(str(x.shape).encode())
        digest.update(x.tobytes())
    return digest.hexdigest()[:32]


def path_for(key: str) -> Path | None:
    """The file of ``key``, or None when the cache is off."""
    where = cache_dir()
    return None if where is None else where / f"{key}.json"


def usable(record: Any, key: str) -> bool:
    """Whether a kept record is this key's and has a sweep the report can draw.

    The cache sits outside the run directory, where anything may have written,
    so a record is taken only when its key matches and each sweep point holds
    finite numbers; anything else is measured afresh.
    """
    if not isinstance(record, dict) or record.get("key") != key:
        return False
    sweep = record.get("sweep")
    return isinstance(sweep, list) and bool(sweep) and all(
        isinstance(p, dict) and all(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                                    and math.isfinite(p[k]) for k in ("lambda", "exponent", "std"))
        for p in sweep)


def store(key: str, record: dict[str, Any]) -> Path | None:
    """Keep ``record`` under ``key``; None (and a debug line) when the cache is off or unwritable."""
    path = path_for(key)
    if path is None:
        return None
    shared = {k: v for k, v in record.items() if k not in RUN_ONLY}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temp_files(path.parent)  # what a killed write of this cache left
        atomic_write_text(path, json.dumps({**shared, "key": key}, indent=1))
    except OSError as exc:
        log.debug("calibration not kept in %s: %s", path, exc)
        return None
    return path
