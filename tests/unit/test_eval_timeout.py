"""``train.eval_timeout`` in this process: a training over its limit fails with that reason,
alone or in a fused group, at the next slice or batch boundary."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import one_stage_evaluator  # noqa: E402

LIMIT_S = 0.5


@pytest.fixture(scope="module")
def slow_evaluator():
    """Dense digits with a batch of 1 and many epochs: far longer than the limit."""
    ev = one_stage_evaluator(epochs=50, samples=1000)
    train = dataclasses.replace(ev.cfg.train, eval_timeout=LIMIT_S, batch_size=1)
    ev.cfg = dataclasses.replace(ev.cfg, train=train)
    return ev


def _tasks(ev, count: int):
    from gnas.genome.space import bits_to_str
    from gnas.records import EvalTask

    rng = np.random.default_rng(0)
    return [EvalTask(key=f"k{i}", genome=bits_to_str(ev.space.random_bits(rng)), seed=i)
            for i in range(count)]


@pytest.mark.parametrize("group", [1, 3])
def test_a_training_over_its_limit_fails_with_the_reason(slow_evaluator, group: int):
    tasks = _tasks(slow_evaluator, group)
    began = time.monotonic()
    results = slow_evaluator.evaluate_group(tasks) if group > 1 else [slow_evaluator.evaluate(tasks[0])]
    took = time.monotonic() - began
    assert [r.status for r in results] == ["failed"] * group
    assert all("timed out after 0.5 s (--eval-timeout)" in r.message for r in results), [r.message for r in results]
    assert took < LIMIT_S * group + 10  # stopped at a boundary, not after 50 epochs


def test_without_a_limit_nothing_times_out():
    from gnas.runs import heartbeat

    with heartbeat.time_limit(0):
        heartbeat.beat("1 network", 1, 1, 1, 1)
    with heartbeat.time_limit(60):
        heartbeat.beat("1 network", 1, 1, 1, 1)
