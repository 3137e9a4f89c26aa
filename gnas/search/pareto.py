"""Pareto fronts: which networks no other network beats on every objective.

:func:`non_dominated` is pure NumPy and is what both the report and NSGA-II use.
The report's ``pareto_front`` section (``gnas.report.sections``) shows the
evaluated networks that no other is better than on validation error and
complexity at once (the trade-off a user picks a model from).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from gnas.records import StoredEvaluation


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


def best_evaluations(evaluations: Iterable[StoredEvaluation]) -> list[StoredEvaluation]:
    """One successful evaluation per network: the one with the lowest validation error."""
    best: dict[str, StoredEvaluation] = {}
    for e in evaluations:
        if not e.result.ok:
            continue
        current = best.get(e.key)
        if current is None or e.result.val_error < current.result.val_error:
            best[e.key] = e
    return list(best.values())


def complexity_of(e: StoredEvaluation, complexity: str) -> int:
    """The network's ``params`` or ``flops``: the complexity objective of a front."""
    if complexity not in ("params", "flops"):
        raise ValueError(f"complexity must be params or flops. Received: {complexity!r}.")
    return int(getattr(e.result, complexity) or 0)


def front_of(evaluations: Iterable[StoredEvaluation], complexity: str = "params") -> list[StoredEvaluation]:
    """The evaluations on the (validation error, complexity) front, simplest first."""
    candidates = best_evaluations(evaluations)
    if not candidates:
        return []
    points = np.array([[e.result.val_error, complexity_of(e, complexity)] for e in candidates], dtype=float)
    front = [candidates[i] for i in non_dominated(points)]
    return sorted(front, key=lambda e: (complexity_of(e, complexity), e.result.val_error, e.key))
