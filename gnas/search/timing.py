"""Planning a run to fit a wall-clock budget (``--time-budget``, ``evolution.max_seconds``).

A budget is counted from the start of the command, calibration and final
training included. From the measured cost of one epoch of typical candidates
on this machine (:class:`EpochCost`, measured by ``gnas.backend.epoch_cost``)
the plan shares the budget out: at most :data:`CALIBRATION_SHARE` for the λ_c
calibration, :data:`FINAL_SHARE` for the final training on the whole training
split, and the rest for the search, whose training subset, epochs per candidate,
population and generations are chosen so that about :data:`TARGET_NETWORKS`
networks fit. Only what the user left open is planned; what was given is kept
and the budget is still enforced (the search stops starting generations in time
to leave the final training its share).

Pure arithmetic: no TensorFlow, so it is tested in milliseconds.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from gnas.errors import ConfigError

CALIBRATION_SHARE = 0.10
FINAL_SHARE = 0.25
SAFETY = 0.85          # of each share planned for: timings on a shared machine vary
TARGET_NETWORKS = 40   # networks a search should see to be worth running
MIN_NETWORKS = 8       # fewer: a smaller training subset before fewer networks
MIN_SAMPLES = 2000     # the smallest training subset a search is planned on
SCORING_SHARE = 0.6    # seconds to score a sample, as a share of those to train on it for an epoch
MIN_BUDGET_S = 60.0    # below this no plan is attempted: start-up alone takes seconds
PLANNED_KEYS = ("data.max_train_samples", "train.search_samples", "train.epochs", "evolution.population",
                "evolution.generations", "final.max_epochs", "evolution.final_seeds")

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds of ``30m``, ``2h``, ``90s``, ``1h30m`` or plain seconds; ValueError when it is none."""
    spec = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s|)", spec)
    if not spec or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", spec):
        raise ValueError(f"expected a duration such as 30m, 2h, 90s or seconds, got {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration such as 30m, 2h or 90s, got {text!r}")
    return seconds


def duration_text(seconds: float) -> str:
    """``8 min``, ``45 s``, ``1 h 05 min``: a duration as a plan says it."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class EpochCost:
    """Measured seconds of one epoch of typical candidates, per training sample.

    ``search``: per network and sample, trained in a group as the search trains
    them; ``final``: per sample, one network trained alone as the final training
    trains it (Keras' ``fit`` with validation).
    """

    search: float
    final: float
    overhead: float = 0.0  # seconds per search network besides its epochs: building, tracing, scoring
    seconds: float = 0.0  # what the measurement itself took

    def network_s(self, samples: int, epochs: int) -> float:
        """Seconds of one search network trained ``epochs`` epochs on ``samples`` samples."""
        return self.overhead + self.search * samples * epochs


@dataclass(frozen=True)
class Plan:
    """How a budgeted run spends its seconds, and the settings that make it fit."""

    budget_s: float
    calibration_s: float
    search_s: float
    final_s: float
    samples: int          # training samples of the search (the final trains on train_size)
    train_size: int
    epochs: int
    population: int
    generations: int
    final_epochs: int
    overrides: dict[str, Any] = field(default_factory=dict)  # the config keys it sets
    end_s: float = 0.0    # after the final training: scoring the delivered model and saving it

    @property
    def networks(self) -> int:
        return self.population * (self.generations + 1)

    def text(self) -> str:
        """``about 40 networks of 2 epochs on 12,000 images, final training ≤ 8 min``."""
        return (f"plan for {duration_text(self.budget_s)}: about {self.networks} networks of "
                f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} on {self.samples:,} samples "
                f"(population {self.population}, {self.generations} generations), "
                f"final training on {self.train_size:,} samples ≤ {duration_text(self.final_s)} "
                f"(up to {self.final_epochs} epochs), calibration ≤ {duration_text(self.calibration_s)}")


def least_budget(cost: EpochCost, train_size: int, spent_s: float) -> float:
    """The smallest budget that trains one network of one epoch and a final model of one epoch."""
    one = cost.network_s(min(train_size, MIN_SAMPLES), 1) + cost.final * train_size
    return spent_s + one / SAFETY / (1.0 - CALIBRATION_SHARE)


def check_budget(budget_s: float, cost: EpochCost, train_size: int, spent_s: float) -> None:
    """Refuse a budget too small for one network and a final model, naming the least that would work."""
    least = least_budget(cost, train_size, spent_s)
    if budget_s < least:
        raise ConfigError(f"--time-budget {duration_text(budget_s)} is too short on this machine: one "
                          f"network and a final model need at least {duration_text(math.ceil(least))} "
                          f"(measured {cost.final * train_size:.1f} s per final epoch); give "
                          f"--time-budget {math.ceil(least / 60)}m or more.")


def plan_run(budget_s: float, cost: EpochCost, train_size: int, spent_s: float,
             given: Mapping[str, Any], epochs: int, population: int, generations: int,
             final_epochs: int, scored: int = 0) -> Plan:
    """Share ``budget_s`` out and choose what the user left open (keys not in ``given``).

    ``epochs``, ``population``, ``generations`` and ``final_epochs`` are the
    configured values, kept where given. ``spent_s`` is what the command spent
    before planning (loading, the measurement); ``scored`` the validation and
    test samples the delivered model is scored on once trained (kept for at the end).
    """
    check_budget(budget_s, cost, train_size, spent_s)
    end_s = scored * cost.final * SCORING_SHARE / SAFETY
    left = budget_s - spent_s - end_s
    calibration_s = CALIBRATION_SHARE * budget_s
    final_s = FINAL_SHARE * left
    final_epoch_s = max(cost.final * train_size, 1e-6)
    if "final.max_epochs" not in given:
        final_epochs = max(1, int(final_s * SAFETY / final_epoch_s))
    final_s = min(final_s, final_epochs * final_epoch_s / SAFETY) if final_epochs else 0.0
    search_s = max(0.0, (left - calibration_s - final_s) * SAFETY)
    samples, epochs = _subset_and_epochs(search_s, cost, train_size, given, epochs)
    networks = max(1, int(search_s / max(cost.network_s(samples, epochs), 1e-9)))
    population, generations = _shape(networks, given, population, generations)
    overrides: dict[str, Any] = {}
    for key, value in (("train.search_samples", samples if samples < train_size else 0),
                       ("train.epochs", epochs), ("evolution.population", population),
                       ("evolution.generations", generations), ("final.max_epochs", final_epochs),
                       ("evolution.final_seeds", 0)):
        if key not in given:
            overrides[key] = value
    return Plan(budget_s=budget_s, calibration_s=calibration_s, search_s=search_s, final_s=final_s,
                samples=samples, train_size=train_size, epochs=epochs, population=population,
                generations=generations, final_epochs=final_epochs, overrides=overrides, end_s=end_s)


def _subset_and_epochs(search_s: float, cost: EpochCost, train_size: int, given: Mapping[str, Any],
                       epochs: int) -> tuple[int, int]:
    """The largest training subset (halving from the whole split) and epochs (2, else 1) that let
    :data:`TARGET_NETWORKS` networks train, down to :data:`MIN_SAMPLES` and :data:`MIN_NETWORKS`."""
    fixed_samples = "train.search_samples" in given or "data.max_train_samples" in given
    samples = train_size
    if "train.epochs" not in given:
        epochs = 2

    def fits(n: int, e: int, target: int) -> bool:
        return search_s >= target * cost.network_s(n, e)

    while not fixed_samples and samples > MIN_SAMPLES and not fits(samples, epochs, TARGET_NETWORKS):
        samples = max(MIN_SAMPLES, samples // 2)
    if "train.epochs" not in given and not fits(samples, epochs, TARGET_NETWORKS):
        epochs = 1
    while not fixed_samples and samples > min(MIN_SAMPLES, train_size) // 2 \
            and not fits(samples, epochs, MIN_NETWORKS):
        samples = max(1, samples // 2)
    return min(samples, train_size), epochs


def _shape(networks: int, given: Mapping[str, Any], population: int, generations: int) -> tuple[int, int]:
    """Population and generations for about ``networks`` trainings (population ≈ √(2 N), 4 to 16)."""
    if "evolution.population" not in given:
        population = int(min(16, max(4, round(math.sqrt(2 * networks)))))
    if "evolution.generations" not in given:
        generations = max(1, networks // population - 1)
    return population, generations


ESTIMATE_FROM = 10000  # training samples from which a run without a budget is estimated first
LONG_RUN_S = 3600.0     # a run estimated longer than this says so and suggests a budget


def estimate_text(cost: EpochCost, train_size: int, networks: int, epochs: int,
                  final_epochs: int) -> tuple[float, str]:
    """(seconds, one line) of a run without a budget: its search and, at most, its final training."""
    search = networks * cost.network_s(train_size, epochs)
    final = final_epochs * cost.final * train_size
    total = search + final
    text = (f"this run needs about {duration_text(total)} on this machine: {networks} networks of "
            f"{epochs} epoch{'s' if epochs != 1 else ''} on {train_size:,} samples "
            f"(~{duration_text(search)}), a final training of up to {final_epochs} epochs "
            f"(~{duration_text(final)} at most), plus the calibration")
    if total > LONG_RUN_S:
        text += "; --time-budget 30m (or any duration) plans a run that fits it"
    return total, text


def search_seconds_left(left_s: float, final_s: float, generation_s: float) -> bool:
    """Whether a generation that takes ``generation_s`` still fits before the final training's share."""
    return left_s - final_s >= generation_s
