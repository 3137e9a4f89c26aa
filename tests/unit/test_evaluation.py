"""The evaluation room: cache, budget, failure cap, and the fidelity schedule's seam."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnas.config import load_config
from gnas.errors import FatalError
from gnas.genome.space import SearchSpace
from gnas.errors import ConfigError
from gnas.records import EvalResult, EvalTask, Kind, Status, fidelity_metrics
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search.evaluation import BudgetSpent, Evaluations
from gnas.search.fidelity import SuccessiveHalving, check_epoch_budget, epochs_held
from gnas.search.fitness import FitnessModel


class ListExecutor:
    """Records every task; scores by the task's options (``epochs``), or fails every one."""

    def __init__(self, fail: bool = False) -> None:
        self.tasks: list[EvalTask] = []
        self.fail = fail

    def run(self, tasks):
        for task in tasks:
            self.tasks.append(task)
            status = Status.FAILED if self.fail else Status.OK
            yield EvalResult(key=task.key, genome=task.genome, status=status, message="diverged",
                             val_error=1.0 / (1 + task.options.get("epochs", 1)), kind=task.kind,
                             generation=task.generation)

    def final(self, genome, seed, out_dir, options=None):
        raise AssertionError("the room never trains to the end")

    def close(self) -> None:
        pass


class RungExecutor(ListExecutor):
    """Stores each task's rung and epochs as a real training would; errors fall with epochs."""

    def run(self, tasks):
        for task in tasks:
            self.tasks.append(task)
            yield EvalResult(key=task.key, genome=task.genome, status=Status.OK, kind=task.kind,
                             val_error=int(task.key[:4], 16) / 2**16 / task.epochs,
                             generation=task.generation, metrics=fidelity_metrics(task))


class TwoRungs:
    """A schedule that trains every candidate at 1 epoch, then continues it to 3."""

    def __init__(self) -> None:
        self.started: list[EvalTask] = []

    def first(self, task: EvalTask) -> EvalTask:
        task = dataclasses.replace(task, options={**task.options, "epochs": 1})
        self.started.append(task)
        return task

    def promotions(self, generation: int) -> list[EvalTask]:
        started, self.started = self.started, []
        return [dataclasses.replace(t, options={**t.options, "epochs": 3}) for t in started]


def room(tmp_path, executor, schedule=None, **overrides):
    cfg = load_config(overrides={"evolution.population": 4, **overrides})
    space = SearchSpace(cfg.space, (64,), 10, family="dense")
    store = EvaluationStore(tmp_path / "evaluations.db")
    reports: list[tuple[str, bool]] = []
    ev = Evaluations(cfg, space, store, executor, FitnessModel(cfg, space),
                     SearchState(generation=0, population=[], fitness=[], rng_state={},
                                 genome_length=space.length, l=space.l),
                     report=lambda r, cached: reports.append((r.key, cached)),
                     stop_hint="`gnas resume RUN`", schedule=schedule)
    rng = np.random.default_rng(0)
    genomes = []
    while len({space.key(g) for g in genomes}) < 5:  # five different networks
        genomes = [space.random_bits(rng) for _ in range(5)]
    return ev, genomes, reports, store


def test_a_network_is_trained_once_and_then_reported_from_the_cache(tmp_path):
    executor = ListExecutor()
    ev, genomes, reports, store = room(tmp_path, executor)
    first = ev.evaluate(genomes, generation=0)
    again = ev.evaluate(genomes, generation=1)
    same = [(r.key, r.val_error) for r in first] == [(r.key, r.val_error) for r in again]
    assert same and len(executor.tasks) == 5 == ev.state.trained
    assert [cached for _, cached in reports] == [False] * 5 + [True] * 5
    store.close()


def test_the_budget_cuts_a_round_and_keeps_what_it_trained(tmp_path):
    executor = ListExecutor()
    ev, genomes, _, store = room(tmp_path, executor, **{"evolution.max_trainings": 3,
                                                         "evolution.final_seeds": 0})
    with pytest.raises(BudgetSpent) as spent:
        ev.evaluate(genomes, generation=0)
    assert len(spent.value.evaluated) == 3 == ev.state.trained == store.count()
    assert ev.budget_left() == 0
    store.close()


def test_consecutive_failures_stop_the_run_with_the_way_out(tmp_path):
    ev, genomes, _, store = room(tmp_path, ListExecutor(fail=True),
                                 **{"evolution.max_consecutive_failures": 3})
    with pytest.raises(FatalError, match="3 evaluations failed in a row .*diverged.*gnas resume RUN"):
        ev.evaluate(genomes, generation=0)
    assert store.count() == 3
    store.close()


def test_a_schedule_continues_candidates_without_the_caller_knowing(tmp_path):
    executor = ListExecutor()
    ev, genomes, _, store = room(tmp_path, executor, schedule=TwoRungs())
    results = ev.evaluate(genomes, generation=0, kind=Kind.SEARCH)
    assert [t.options["epochs"] for t in executor.tasks] == [1] * 5 + [3] * 5
    assert all(r.val_error == pytest.approx(0.25) for r in results)  # the last rung's result
    assert ev.state.trained == 10 and store.lookup(results[0].key).val_error == pytest.approx(0.25)
    store.close()


SHA = {"fidelity.schedule": "sha", "fidelity.min_epochs": 1, "fidelity.max_epochs": 9,
       "fidelity.eta": 3, "evolution.final_seeds": 0, "final.max_epochs": 10}


@pytest.mark.parametrize("total, spent", [(17, 7), (16, 5)], ids=["promotion fits", "promotion cut"])
def test_epochs_are_counted_exactly_against_the_epoch_budget(tmp_path, total, spent):
    """10 epochs held for the final training; five first rungs (5), one promotion 1 -> 3 (2)."""
    executor = RungExecutor()
    cfg = load_config(overrides={**SHA, "evolution.max_epochs_total": total})
    assert epochs_held(cfg) == (0, 10)
    ev, genomes, _, store = room(tmp_path, executor, **SHA, **{"evolution.max_epochs_total": total})
    ev.schedule = SuccessiveHalving(ev.cfg, store, tmp_path)
    if spent == 7:
        ev.evaluate(genomes, generation=0)
    else:
        with pytest.raises(BudgetSpent):
            ev.evaluate(genomes, generation=0)
    assert sum(t.epochs_to_train(4) for t in executor.tasks) == spent
    assert ev.epochs_left() == total - 10 - spent and ev.spent() == (spent == 7)
    store.close()


def test_an_epoch_budget_below_the_final_trainings_and_one_rung_is_refused():
    check_epoch_budget(load_config(overrides={**SHA, "evolution.max_epochs_total": 11}))
    with pytest.raises(ConfigError, match="--budget-epochs 10 leaves no epochs for the search: .* hold "
                                          "back 10 .* at least 11"):
        check_epoch_budget(load_config(overrides={**SHA, "evolution.max_epochs_total": 10}))
