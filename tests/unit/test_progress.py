"""The progress bar counts what the run will do: slots, then the final pick's extra seeds."""
from __future__ import annotations

import io
from types import SimpleNamespace

from gnas.config import load_config
from gnas.records import EvalResult, Kind, Status
from gnas.search.callbacks import ProgressBar


def fake_search(**overrides):
    cfg = load_config(overrides={"evolution.population": 4, "evolution.generations": 2, **overrides})
    state = SimpleNamespace(generation=-1, trained=0, reused=0, logbook=[], finished=False)
    return SimpleNamespace(cfg=cfg, state=state, fitness_model=SimpleNamespace(fitness=lambda r: 0.5))


def result(kind: Kind) -> EvalResult:
    return EvalResult(key="k", genome="0", status=Status.OK, val_error=0.5, kind=kind)


def test_total_holds_the_slots_and_the_final_seeds_and_ends_full():
    search = fake_search(**{"evolution.final_candidates": 2, "evolution.final_seeds": 3})
    bar = ProgressBar(stream=io.StringIO())
    bar.on_search_begin(search)
    assert bar.bar.total == 4 * 3 + 2 * 3
    for _ in range(12):
        bar.on_evaluated(search, result(Kind.SEARCH), cached=False)
    bar.on_evaluated(search, result(Kind.PRUNE), cached=False)  # a pruning attempt is no slot
    assert bar.bar.n == 12
    for _ in range(6):
        bar.on_evaluated(search, result(Kind.RESEED), cached=False)
    assert bar.bar.n == bar.bar.total


def test_a_budget_counts_trainings_only():
    search = fake_search(**{"evolution.max_trainings": 7})
    bar = ProgressBar(stream=io.StringIO())
    bar.on_search_begin(search)
    assert bar.bar.total == 7
    bar.on_evaluated(search, result(Kind.SEARCH), cached=True)
    bar.on_evaluated(search, result(Kind.RESEED), cached=False)
    assert bar.bar.n == 1


def test_a_finished_run_extended_with_more_generations_starts_where_it_stands():
    search = fake_search(**{"evolution.generations": 4, "evolution.final_seeds": 0})
    search.state.generation, search.state.finished = 2, True  # done 0..2, now asked for 4
    bar = ProgressBar(stream=io.StringIO())
    bar.on_search_begin(search)
    assert (bar.bar.n, bar.bar.total) == (4 * 3, 4 * 5)


def test_the_heartbeat_shows_where_the_training_in_progress_stands():
    from gnas.runs import heartbeat

    stream = io.StringIO()
    bar = ProgressBar(stream=stream)
    search = fake_search()
    bar.on_search_begin(search)
    heartbeat.beat("8 networks", 1, 2, 120, 469)
    assert "8 networks: epoch 1/2, batch 120/469" in stream.getvalue()
    bar.on_evaluated(search, result(Kind.SEARCH), cached=False)
    bar.on_search_end(search)
    heartbeat.beat("8 networks", 2, 2, 1, 469)  # no longer listening
    assert "epoch 2/2" not in stream.getvalue()
