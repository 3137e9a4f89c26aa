"""Training groups are a pure function of the pending tasks, bounded by size and memory."""
from __future__ import annotations

from gnas.execution.groups import form_groups
from gnas.records import EvalTask, Kind


def _tasks() -> list[EvalTask]:
    widths = {"a": 32, "b": 64, "c": 32, "d": 32, "e": 64, "f": 32, "g": 32}
    return [EvalTask(key=k, genome=str(w), seed=i) for i, (k, w) in enumerate(widths.items())]


def _form(tasks, size=3, budget=10**9, need=1):
    return form_groups(tasks, size, signature=lambda t: ("dense", t.genome),
                       step_bytes=lambda t: need, budget_bytes=budget)


def keys(groups):
    return [[t.key for t in g] for g in groups]


def test_groups_share_a_signature_and_respect_the_size():
    groups = _form(_tasks())
    assert keys(groups) == [["a", "c", "d"], ["b", "e"], ["f", "g"]]
    assert sorted(k for g in keys(groups) for k in g) == list("abcdefg")


def test_groups_do_not_depend_on_the_order_tasks_are_pending_in():
    tasks = _tasks()
    assert sorted(keys(_form(tasks))) == sorted(keys(_form(list(reversed(tasks)))))


def test_memory_budget_bounds_a_group():
    assert keys(_form(_tasks(), size=8, budget=250, need=100)) == [
        ["a", "c"], ["b", "e"], ["d", "f"], ["g"]]


def test_size_one_pruning_and_undecodable_tasks_stay_alone():
    tasks = _tasks()
    assert keys(_form(tasks, size=1)) == [[t.key] for t in tasks]
    tasks[0] = EvalTask(key="a", genome="32", seed=0, kind=Kind.PRUNE)
    groups = form_groups(tasks, 8, signature=lambda t: None if t.key == "b" else t.genome,
                         step_bytes=lambda t: 1, budget_bytes=100)
    assert keys(groups) == [["a"], ["b"], ["c", "d", "f", "g"], ["e"]]


def test_a_rank_puts_similar_tasks_side_by_side():
    tasks = _tasks()
    groups = form_groups(tasks, 3, signature=lambda t: "dense", step_bytes=lambda t: 1,
                         budget_bytes=100, rank=lambda t: int(t.genome))
    assert keys(groups) == [["a", "c", "d"], ["f", "g", "b"], ["e"]]


def test_the_spread_size_gives_every_worker_a_group():
    from gnas.execution.groups import spread_size

    assert spread_size(8, 8, 2) == 4 and spread_size(8, 9, 2) == 5
    assert spread_size(8, 100, 2) == 8  # enough work: the configured size
    assert spread_size(8, 3, 4) == 1 and spread_size(1, 100, 1) == 1 and spread_size(8, 0, 2) == 1
    groups = _form(_tasks(), size=spread_size(8, 7, 2))  # two signatures, 4 + 3 wide: 1 + 2 groups
    assert len(groups) >= 2 and max(len(g) for g in groups) <= 4
