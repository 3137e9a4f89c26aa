"""Which pending evaluations train together: groups as a pure function of the tasks.

Members of one group are traced into one training step, so they must share a
graph shape that batches well (the evaluator's signature: family, number of
active stages, the batch size and, for the conv family, the widths; the dense
superset pads widths, and a rank puts similar widths side by side) and must fit
in memory side by side (seed 002's operational memory, summed). Groups depend
only on the set of pending tasks, never on timing or on which worker is free, so
a resumed generation forms the groups an uninterrupted one would have formed;
a member's score does not depend on its group mates in any case
(:mod:`gnas.backend.population`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Sequence

from gnas.records import EvalTask, Kind


def form_groups(tasks: Sequence[EvalTask], group_size: int,
                signature: Callable[[EvalTask], Hashable],
                step_bytes: Callable[[EvalTask], int], budget_bytes: int,
                rank: Callable[[EvalTask], Any] | None = None) -> list[list[EvalTask]]:
    """Split ``tasks`` into groups of at most ``group_size`` members that fit ``budget_bytes``.

    Pruning tasks (their own fine-tuning loop) and tasks whose signature is
    ``None`` (they cannot be decoded; the solo path reports why) stay alone.
    Within a signature tasks are ordered by ``rank`` (tasks that batch best
    together side by side, e.g. by width), then by cache key, then cut into
    groups greedily; the groups are listed in the order their first task was
    pending.
    """
    if group_size <= 1:
        return [[task] for task in tasks]
    alone: list[list[EvalTask]] = []
    buckets: dict[Hashable, list[EvalTask]] = {}
    first_seen: dict[int, int] = {}
    for pos, task in enumerate(tasks):
        sig = None if task.kind == Kind.PRUNE else signature(task)
        if sig is None:
            alone.append([task])
            first_seen[id(alone[-1])] = pos
        else:
            buckets.setdefault(sig, []).append(task)
    groups: list[list[EvalTask]] = []
    for bucket in buckets.values():
        current: list[EvalTask] = []
        used = 0
        for task in sorted(bucket, key=lambda t: (rank(t) if rank else (), t.key, t.seed)):
            need = step_bytes(task)
            if current and (len(current) >= group_size or used + need > budget_bytes):
                groups.append(current)
                current, used = [], 0
            current.append(task)
            used += need
        if current:
            groups.append(current)
    order = {id(t): pos for pos, t in enumerate(tasks)}
    for group in groups:
        first_seen[id(group)] = min(order[id(t)] for t in group)
    return sorted(alone + groups, key=lambda g: first_seen[id(g)])


def spread_size(group_size: int, pending: int, workers: int) -> int:
    """The group size that gives every one of ``workers`` workers work: at most
    ``ceil(pending / workers)``.

    A group trains on one worker, so eight pending tasks in one group of eight
    would leave a second worker idle and undo its speed-up; capped, they form
    (at least) one group per worker. This is safe only because a member's score
    does not depend on its group or its group's size
    (:mod:`gnas.backend.population`, tested bit for bit): the cap changes how
    fast a generation trains, never what it scores. It is still a function of
    the pending tasks and the worker count alone, so a resumed generation groups
    as an uninterrupted one with the same workers would.
    """
    if group_size <= 1 or pending <= 0:
        return 1
    return max(1, min(group_size, math.ceil(pending / max(1, workers))))
