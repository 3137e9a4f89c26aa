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

Anything may have written there, so :func:`load` reads only a regular file of
at most :data:`MAX_BYTES` (opened without blocking: a FIFO is refused, not
waited on), parses it with the nesting the record has, and checks every field's
type and range (:func:`problem`); a record that fails is measured afresh, and
why is logged. Nothing it does not know is copied into a run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gnas.runs.atomic import atomic_write_text, remove_dead_temp_files

log = logging.getLogger(__name__)

CACHE_ENV = "GNAS_CACHE_DIR"
#: Bump when the probe, the sweep or the verdict would give another result for the same key.
VERSION = 1
# what a record keeps of one run only, dropped before it is shared with later runs
RUN_ONLY = ("png",)
#: A kept record is a few kilobytes (a sweep of 101 points is about 10 KB): larger is not one.
MAX_BYTES = 256 * 1024
#: Longest text field (a reason is one sentence; a dataset a path).
MAX_TEXT = 4096


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
    return isinstance(sweep, list) and bool(sweep) and sound_sweep(sweep)


def sound_sweep(sweep: Any) -> bool:
    """A list of sweep points, each exactly ``lambda, exponent, std``, all finite numbers."""
    return isinstance(sweep, list) and all(
        isinstance(p, dict) and set(p) == {"lambda", "exponent", "std"}
        and all(isinstance(p[k], (int, float)) and not isinstance(p[k], bool) and math.isfinite(p[k])
                for k in p)
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


# ------------------------------------------------------------- reading back
def load(key: str, dataset: str, fingerprint: str) -> dict[str, Any] | None:
    """The kept record of ``key`` when it is sound and for this data and space, else None.

    A missing file is silent; any other reason to measure afresh is logged
    with the file's path.
    """
    path = path_for(key)
    if path is None:
        return None
    record, why = read_record(path)
    if why is None:
        why = problem(record, key=key, dataset=dataset, fingerprint=fingerprint)
    if why is not None:
        if why != MISSING:
            log.warning("the kept calibration %s is not used (%s); measuring lambda_c afresh", path, why)
        return None
    return record


MISSING = "no such file"


def read_record(path: Path) -> tuple[Any, str | None]:
    """A JSON file's content and None, or None and why it cannot be read.

    Only a regular file of at most :data:`MAX_BYTES` is read; it is opened
    without blocking, so a FIFO or a device in its place answers at once.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, MISSING
    except OSError as exc:
        return None, f"cannot be opened: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_size > MAX_BYTES:
            return None, f"{info.st_size} bytes, more than a record's {MAX_BYTES}"
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        return None, f"more than a record's {MAX_BYTES} bytes"
    try:
        return json.loads(data.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, "not a JSON record"


def _number(lo: float = -math.inf, hi: float = math.inf) -> Callable[[Any], bool]:
    return lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) and lo <= v <= hi)


def _integer(lo: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v < 2 ** 63


def _text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_TEXT


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _interval(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 2 and all(_number()(x) for x in v) and v[0] <= v[1])


def _one_of(*values: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in values


#: Every field of a record (:meth:`gnas.chaos.calibration.Calibration.to_dict` and
#: the run's additions) and what its value must be.
FIELDS: dict[str, Callable[[Any], bool]] = {
    "lambda_c": _number(0.0, 1.0), "source": _one_of("measured", "preset"), "reason": _text,
    "weight_scale": _number(0.0), "samples": _integer(1), "batch": _integer(1), "seed": _integer(0),
    "network": _one_of("search", "theory"), "expected": _optional(_number()),
    "seconds": _number(0.0), "batches": _integer(1), "crossing_at": _optional(_number()),
    "lambda_c_ci": _optional(_interval), "robust": lambda v: isinstance(v, bool),
    "crossing_share": _number(0.0, 1.0), "chromosomes": _one_of("run", "bernoulli"),
    "crossing": lambda v: isinstance(v, bool), "dataset": _text, "space": _text,
}


#: What a run's own ``chaos.json`` must hold at least (it may predate the other fields).
REQUIRED_IN_RUN = ("lambda_c", "source", "dataset", "space")


def problem(record: Any, *, key: str | None, dataset: str, fingerprint: str) -> str | None:
    """Why ``record`` is not a sound calibration of this data and space (None: it is).

    ``key`` is the cache key a kept record must carry: then every field must be
    there. ``None`` checks a run's own ``chaos.json``, which carries no key and
    needs only :data:`REQUIRED_IN_RUN`. Either way each field present has a
    value of its type and range, the sweep holds finite numbers, and no
    unknown field is taken.
    """
    if not isinstance(record, dict):
        return "not a JSON object"
    kept = key is not None
    known = set(FIELDS) | {"sweep"} | ({"key"} if kept else set(RUN_ONLY))
    unknown = sorted(str(k)[:40] for k in record if k not in known)
    if unknown:
        return f"unknown field {unknown[0]!r}"
    for name, check in FIELDS.items():
        if name not in record:
            if kept or name in REQUIRED_IN_RUN:
                return f"no field {name!r}"
        elif not check(record[name]):
            return f"field {name!r} has a value of the wrong type or range"
    if any(not _text(record.get(name, "")) for name in RUN_ONLY):
        return "a run's figure path that is not a short text"
    if kept and not usable(record, key):
        return "another key, or no sweep of finite numbers"
    if not kept and not sound_sweep(record.get("sweep", [])):
        return "a sweep that is not finite numbers"
    if record["dataset"] != dataset or record["space"] != fingerprint:
        return "another data set or search space"
    return None
