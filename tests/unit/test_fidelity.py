"""Successive halving: rungs, promotions decided from the stored rows, rungs ranked first,
and a promotion that continues its training instead of starting again (real Keras)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gnas.config import load_config
from gnas.errors import ConfigError
from gnas.genome.space import SearchSpace, bits_to_str
from gnas.records import EvalResult, EvalTask, Kind, Status
from gnas.runs.store import EvaluationStore
from gnas.search.fidelity import SuccessiveHalving, rung_epochs
from gnas.search.fitness import FitnessModel

from helpers import one_stage_evaluator  # noqa: E402

SHA = {"fidelity.schedule": "sha", "fidelity.min_epochs": 1, "fidelity.max_epochs": 9,
       "fidelity.eta": 3}


def test_rungs_grow_by_eta_and_end_at_the_last_rung():
    assert rung_epochs(load_config(overrides=SHA).fidelity) == [1, 3, 9]
    assert rung_epochs(load_config(overrides={**SHA, "fidelity.min_epochs": 2}).fidelity) == [2, 6, 9]
    assert rung_epochs(load_config().fidelity) == []


@pytest.mark.parametrize("overrides, message", [
    ({"fidelity.min_epochs": 10}, "fidelity.min_epochs=10 exceeds fidelity.max_epochs=9"),
    ({"fidelity.eta": 1}, "fidelity.eta=1 is out of range"),
    ({"fidelity.schedule": "hyperband"}, "fidelity.schedule='hyperband' is not allowed"),
])
def test_an_impossible_schedule_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={**SHA, **overrides})


def _row(store, key, error, rung, generation=0, status=Status.OK, kind=Kind.SEARCH):
    epochs = [1, 3, 9][rung]
    store.add(EvalResult(key=key, genome="1", status=status, val_error=error, kind=kind,
                         generation=generation, metrics={"epochs": epochs, "rung": rung}), error)


def test_the_best_third_of_every_rung_is_promoted_once_and_late_networks_still_rise(tmp_path):
    store = EvaluationStore(tmp_path / "evaluations.db")
    sha = SuccessiveHalving(load_config(overrides=SHA), store, tmp_path)
    for i, error in enumerate([0.5, 0.1, 0.4, 0.2, 0.3]):
        _row(store, f"k{i}", error, 0)
    _row(store, "bad", 1.0, 0, status=Status.FAILED)  # counts in the rung, is never promoted
    tasks = sha.promotions(generation=0)
    assert [(t.key, t.rung, t.epochs, t.resume_from) for t in tasks] == [("k1", 1, 3, 1), ("k3", 1, 3, 1)]
    assert tasks[0].checkpoint_from == str(tmp_path / "fidelity" / "k1-e1.npz")
    assert tasks[0].checkpoint == str(tmp_path / "fidelity" / "k1-e3.npz")
    for t, error in zip(tasks, [0.05, 0.08]):
        _row(store, t.key, error, 1)
    assert sha.promotions(generation=0) == []  # 2 networks at rung 1: none of them is the best third
    for i, error in enumerate([0.9, 0.8, 0.7], start=5):  # a later generation, all worse
        _row(store, f"k{i}", error, 0, generation=1)
    late = sha.promotions(generation=1)
    assert [(t.key, t.generation) for t in late] == [("k4", 1)]  # k4 of generation 0 rises now
    _row(store, "k4", 0.01, 1, generation=1)
    top = sha.promotions(generation=1)
    assert [(t.key, t.rung, t.epochs, t.checkpoint) for t in top] == [("k4", 2, 9, "")]
    store.close()


def test_a_higher_rung_always_ranks_before_a_lower_one():
    cfg = load_config(overrides=SHA)
    model = FitnessModel(cfg, SearchSpace(cfg.space, (64,), 10, family="dense"))

    def result(error, rung, status=Status.OK):
        return EvalResult(key="k", genome="1", status=status, val_error=error, params=10**6,
                          metrics={"rung": rung})

    assert model.fitness(result(0.6, 2)) < model.fitness(result(0.0, 1)) < model.fitness(result(0.0, 0))
    assert model.fitness(result(0.1, 2)) < model.fitness(result(0.2, 2))
    assert model.fitness(result(1.0, 0, Status.FAILED)) > model.fitness(result(1.0, 0))
    assert model.objectives(result(0.6, 2))[0] < model.objectives(result(0.0, 0))[0]
    full = load_config()
    plain = FitnessModel(full, SearchSpace(full.space, (64,), 10, family="dense"))
    assert plain.fitness(result(0.25, 0)) == pytest.approx(0.25 + 0.1 * 10**6 / plain.c_max)


@pytest.fixture(scope="module")
def evaluator():
    return one_stage_evaluator(epochs=3, samples=240)


def _outcome(result):
    return (result.status, result.val_error, result.val_loss)


@pytest.mark.parametrize("fused", [True, False], ids=["dense superset", "exact graphs"])
def test_a_promotion_continues_the_training_it_was_saved_from(evaluator, tmp_path, monkeypatch, fused):
    """1 epoch saved, then 2 more from the saved state == 3 epochs straight, bit for bit."""
    from gnas.backend import population, superset

    if not fused:
        monkeypatch.setattr(superset, "applies", lambda archs: False)
    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(5)))
    saved = tmp_path / "k-e1.npz"
    straight = EvalTask(key="k", genome=genome, seed=11, epochs=3, rung=1)
    first = EvalTask(key="k", genome=genome, seed=11, epochs=1, rung=0, checkpoint=str(saved))
    promoted = EvalTask(key="k", genome=genome, seed=11, epochs=3, rung=1, resume_from=1,
                        checkpoint_from=str(saved))
    [whole] = population.train_group(evaluator, [straight])
    [start] = population.train_group(evaluator, [first])
    assert saved.is_file() and start.metrics["epochs"] == 1 and start.metrics["rung"] == 0
    [rest] = population.train_group(evaluator, [promoted])
    assert whole.ok and _outcome(rest) == _outcome(whole) != _outcome(start)
    assert rest.metrics["epochs"] == 3 and rest.metrics["rung"] == 1


def test_a_damaged_saved_state_fails_the_promotion_with_its_reason(evaluator, tmp_path):
    from gnas.backend import population

    damaged = tmp_path / "k-e1.npz"
    damaged.write_bytes(b"not an npz")
    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(5)))
    [result] = population.train_group(evaluator, [EvalTask(
        key="k", genome=genome, seed=11, epochs=3, rung=1, resume_from=1, checkpoint_from=str(damaged))])
    assert result.status == "failed" and "cannot continue from the saved training state" in result.message
    assert result.metrics["rung"] == 1
