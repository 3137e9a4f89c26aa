"""Pareto fronts: which networks no other network beats on every objective.

:func:`non_dominated` is pure NumPy and is what both the report and NSGA-II use.
The report's ``pareto_front`` section (``gnas.report.sections``) shows the
evaluated networks that no other is better than on validation error and
complexity at once (the trade-off a user picks a model from).
"""
from __future__ import annotations

from typing import Any

import numpy as np


_BLOCK = 512  # rows compared at once: bounds memory at _BLOCK * n * objectives booleans


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the rows of ``points`` that no other row dominates.

    Every column is an objective to minimise. Row ``j`` dominates row ``i`` when it
    is no worse in every objective and strictly better in at least one. So equal
    rows never dominate each other: duplicates on the front are all kept (callers
    that want one per point deduplicate first), and a row equal to a front row is
    itself on the front. Rows with a NaN are never on the front and never dominate
    (an unknown value is no evidence); infinities compare as usual.

    Args:
        points: array of shape (n, m), or (n,) for a single objective.

    Returns:
        int64 array of row indices.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2:
        raise ValueError(f"non_dominated: expected an (n, m) array. Received: shape={pts.shape}.")
    valid = ~np.isnan(pts).any(axis=1)
    candidates = pts[valid]
    keep = np.ones(len(candidates), dtype=bool)
    for start in range(0, len(candidates), _BLOCK):
        block = candidates[start:start + _BLOCK]
        no_worse = (candidates[None, :, :] <= block[:, None, :]).all(axis=2)
        better = (candidates[None, :, :] < block[:, None, :]).any(axis=2)
        keep[start:start + _BLOCK] = ~(no_worse & better).any(axis=1)
    return np.flatnonzero(valid)[keep].astype(np.int64)


def best_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One successful row per network: the one with the lowest validation error."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] != "ok" or row["val_error"] is None:
            continue
        current = best.get(row["genome_key"])
        if current is None or row["val_error"] < current["val_error"]:
            best[row["genome_key"]] = row
    return list(best.values())


def front_of_rows(rows: list[dict[str, Any]], complexity: str = "params") -> list[dict[str, Any]]:
    """The evaluation rows on the (validation error, complexity) front, simplest first."""
    candidates = best_rows(rows)
    if not candidates:
        return []
    points = np.array([[r["val_error"], r[complexity] or 0] for r in candidates], dtype=float)
    front = [candidates[i] for i in non_dominated(points)]
    return sorted(front, key=lambda r: (r[complexity] or 0, r["val_error"], r["genome_key"]))
