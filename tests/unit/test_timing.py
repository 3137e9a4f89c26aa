"""Planning a run to fit a time budget (gnas.search.timing): pure arithmetic on measured costs."""
from __future__ import annotations

import pytest

from gnas.errors import ConfigError
from gnas.search.timing import (CALIBRATION_SHARE, EpochCost, parse_duration, plan_run)

DEFAULTS = dict(epochs=4, population=8, generations=3, final_epochs=50)


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("90s", 90), ("45", 45),
                                           ("1h30m", 5400), ("1.5h", 5400), (" 10 min ", 600)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0", "0m", "-5", "-5m", "10x", "m", "1e3", "nan"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def _predicted(plan, cost: EpochCost, spent: float) -> float:
    """What the plan's run costs if every measured figure holds."""
    search = plan.networks * cost.network_s(plan.samples, plan.epochs)
    final = plan.final_epochs * cost.final * plan.train_size
    scoring = 22000 * cost.final * 0.6  # validation and test, once
    return spent + plan.calibration_s + search + final + scoring


@pytest.mark.parametrize("budget", [120, 600, 1800, 7200])
@pytest.mark.parametrize("search, final", [(2e-5, 3e-5), (4e-4, 2e-4), (1e-6, 1e-6)])
def test_a_plan_fits_its_budget_and_trains_the_final_network_on_the_whole_split(budget, search, final):
    cost = EpochCost(search=search, final=final, overhead=0.5)
    try:
        plan = plan_run(budget, cost, 48000, 10.0, {}, **DEFAULTS, scored=22000)
    except ConfigError as exc:
        assert "at least" in str(exc)  # too short on such a slow machine, and says what would do
        return
    assert _predicted(plan, cost, 10.0) <= budget
    assert plan.calibration_s <= CALIBRATION_SHARE * budget
    assert plan.final_epochs >= 1 and plan.train_size == 48000
    assert plan.population >= 4 and plan.generations >= 1 and 1 <= plan.epochs <= 2
    assert 1 <= plan.samples <= 48000
    assert f"{plan.networks} networks" in plan.text()


def test_a_slow_machine_searches_on_a_subset_and_a_fast_one_on_everything():
    slow = plan_run(600, EpochCost(search=2e-4, final=1e-4), 48000, 5.0, {}, **DEFAULTS)
    fast = plan_run(600, EpochCost(search=1e-7, final=1e-7), 48000, 5.0, {}, **DEFAULTS)
    assert slow.samples < 48000 and slow.overrides["train.search_samples"] == slow.samples
    assert fast.samples == 48000 and fast.overrides["train.search_samples"] == 0
    assert fast.networks > slow.networks


def test_what_the_user_gave_is_kept():
    given = {"evolution.population": 6, "train.epochs": 3, "final.max_epochs": 7}
    plan = plan_run(900, EpochCost(search=2e-5, final=3e-5), 20000, 5.0, given,
                    epochs=3, population=6, generations=3, final_epochs=7)
    assert (plan.population, plan.epochs, plan.final_epochs) == (6, 3, 7)
    assert not set(plan.overrides) & set(given)


def test_a_budget_too_small_is_refused_with_the_least_that_would_work():
    cost = EpochCost(search=1e-3, final=1e-3, overhead=1.0)
    with pytest.raises(ConfigError, match=r"at least .*--time-budget \d+m or more"):
        plan_run(70, cost, 60000, 10.0, {}, **DEFAULTS)


def test_a_run_estimated_over_an_hour_says_so_and_suggests_a_budget():
    from gnas.search.timing import estimate_text

    short_s, short = estimate_text(EpochCost(search=1e-6, final=1e-6), 48000, 36, 4, 50)
    long_s, long = estimate_text(EpochCost(search=2e-3, final=1e-3), 48000, 36, 4, 50)
    assert short_s < 3600 < long_s
    assert "--time-budget" in long and "--time-budget" not in short
    assert "36 networks of 4 epochs on 48,000 samples" in long
