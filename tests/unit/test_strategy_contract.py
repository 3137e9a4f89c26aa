"""The contract every strategy keeps (as Optuna runs one test over every sampler).

For GA, NSGA-II (the GA with NSGA-II survival), random search and aging evolution,
and for the GA with the layer-wise competition step: the state survives a
get_state -> set_state round trip through JSON, a run resumed from its
checkpoint ends exactly as an uninterrupted one, and a seed fixes the run.
The loop is the real one, on a real run directory and SQLite store; only the
training is replaced, by a deterministic function of the network's key.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from gnas.competition.step import CompetitionStep
from gnas.config import RunConfig, load_config
from gnas.genome.architecture import complexity
from gnas.genome.space import SearchSpace, bits_to_str, str_to_bits
from gnas.records import EvalResult, EvalTask, Phase, Status, derive_seed
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore
from gnas.search.fitness import FitnessModel
from gnas.search.loop import InitialPopulation, Search
from gnas.search.step import StepDecision, TrainRequest
from gnas.search.strategies import StrategyView
from gnas.session import strategy_of

CASES = {
    "ga": {},
    "nsga2": {"evolution.objectives": "error,params"},
    "random": {"evolution.strategy": "random"},
    "aging": {"evolution.strategy": "aging"},
    "aging-one-child": {"evolution.strategy": "aging", "evolution.aging_children": 1},
    "ga+competition": {"evolution.competition": True},
}
BASE = {"evolution.population": 6, "evolution.generations": 4, "evolution.seed": 11,
        "evolution.competition": False, "evolution.final_seeds": 0, "evolution.champions": 2,
        "space.stage_nodes": (3, 3), "space.max_depth": 2}


class KeyedExecutor:
    """Scores a network by a digest of its key: deterministic, instant, and different per network."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.trained: list[str] = []
        self.finals: list[tuple[str, int, Path]] = []

    def run(self, tasks: list[EvalTask]):
        for task in tasks:
            self.trained.append(task.key)
            digest = int(hashlib.sha256(task.key.encode()).hexdigest()[:8], 16)
            params, flops = complexity(self.space.decode(str_to_bits(task.genome)))
            yield EvalResult(key=task.key, genome=task.genome, status=Status.OK,
                             val_error=(digest % 997) / 997, val_loss=(digest % 991) / 991,
                             params=params, flops=flops, kind=task.kind, generation=task.generation)

    def final(self, genome, seed, out_dir, options=None, report=None):
        self.finals.append((genome, seed, Path(out_dir)))
        return {"val_error": 0.5, "test_error": 0.5, "test_score": 50.0}

    def close(self) -> None:
        pass


def config(case: str, **overrides) -> RunConfig:
    return load_config(overrides={**BASE, **CASES[case], **overrides})


def space_of(cfg: RunConfig) -> SearchSpace:
    return SearchSpace(cfg.space, (64,), 10, family="dense")


def search(cfg: RunConfig, path: Path, fresh: bool = True, extra_steps: tuple = ()
           ) -> tuple[Search, EvaluationStore]:
    """A Search wired as the session wires one, with the keyed executor."""
    space = space_of(cfg)
    run_dir = RunDir(path)
    if fresh:
        run_dir.create(cfg)
    state = None if fresh else run_dir.load_state(warn=lambda m: None)
    store = EvaluationStore(run_dir.db_path)

    def initial(rng: np.random.Generator) -> InitialPopulation:
        return InitialPopulation([space.random_bits(rng) for _ in range(cfg.evolution.population)],
                                 "random", 0.5, "test")

    steps = [CompetitionStep(cfg, space)] if cfg.evolution.competition else []
    steps += list(extra_steps)
    return Search(cfg, space, run_dir, store, KeyedExecutor(space), strategy_of(cfg, space),
                  state=state, initial=initial, steps=steps), store


def finished_state(cfg: RunConfig, path: Path, fresh: bool = True) -> dict:
    s, store = search(cfg, path, fresh)
    try:
        out = s.run().to_dict()
    finally:
        store.close()
    for record in out["logbook"]:
        record.pop("elapsed_s")  # wall time, the one thing a seed does not fix
    return out


COMPARED = ("generation", "population", "fitness", "keys", "hall_of_fame", "rng_state", "trained",
            "reused", "steps", "pareto_front", "logbook", "phase")


def a_view(cfg: RunConfig, seed: int = 0) -> StrategyView:
    space = space_of(cfg)
    rng = np.random.default_rng(seed)
    population = tuple(space.random_bits(rng) for _ in range(cfg.evolution.population))
    fitness = tuple(float(f) for f in rng.random(len(population)))
    return StrategyView(population, fitness, tuple(space.key(b) for b in population), Phase.GROW,
                        lookup=lambda key: None, fitness_model=FitnessModel(cfg, space))


@pytest.mark.parametrize("case", [c for c in CASES if c != "ga+competition"])
def test_state_round_trip_gives_the_same_offspring(case):
    cfg = config(case)
    space = space_of(cfg)
    first, second = strategy_of(cfg, space), strategy_of(cfg, space)
    second.set_state(json.loads(json.dumps(first.get_state())))
    assert second.get_state() == first.get_state()
    view = a_view(cfg)
    a = first.offspring(view, np.random.default_rng(3)).offspring
    b = second.offspring(view, np.random.default_rng(3)).offspring
    assert a == b and len(a) == cfg.evolution.population


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_equals_uninterrupted_run(case, tmp_path):
    straight = finished_state(config(case), tmp_path / "straight")
    finished_state(config(case, **{"evolution.generations": 2}), tmp_path / "split")
    resumed = finished_state(config(case), tmp_path / "split", fresh=False)
    assert resumed["generation"] == straight["generation"] == 4
    for key in COMPARED:
        assert resumed[key] == straight[key], key
    store = EvaluationStore(tmp_path / "split" / "evaluations.db")
    keys = [r["genome_key"] for r in store.rows() if r["kind"] == "search"]
    store.close()
    assert len(keys) == len(set(keys)), "a network was trained twice"


@pytest.mark.parametrize("case", list(CASES))
def test_a_seed_fixes_the_run_and_another_seed_changes_it(case, tmp_path):
    a = finished_state(config(case), tmp_path / "a")
    b = finished_state(config(case), tmp_path / "b")
    other = finished_state(config(case, **{"evolution.seed": 12}), tmp_path / "c")
    for key in COMPARED:
        assert a[key] == b[key], key
    assert a["population"] != other["population"]


class AskingStep:
    """Asks, at the last generation, for its best network to be trained to the end."""

    name = "asking"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.book: dict = {}

    def after_evaluation(self, view):
        if not view.is_last:
            return StepDecision()
        best = min(range(len(view.keys)), key=lambda i: (view.fitness[i], i))
        return StepDecision(train=(TrainRequest(bits_to_str(view.population[best]), view.keys[best],
                                                self.out_dir),))

    def on_trained(self, request, metrics):
        self.book = {"key": request.key, **metrics}

    def get_state(self):
        return self.book

    def set_state(self, state):
        self.book = dict(state)


def test_a_steps_training_request_is_carried_out_and_answered_before_the_checkpoint(tmp_path):
    cfg = config("ga")
    s, store = search(cfg, tmp_path / "run", extra_steps=(AskingStep(tmp_path / "before"),))
    try:
        state = s.run()
        genome_of = {r["genome_key"]: r["genome"] for r in store.rows()}
    finally:
        store.close()
    asked = state.steps["asking"]
    assert asked["test_score"] == 50.0
    saved = RunDir(tmp_path / "run").load_state(warn=lambda m: None)
    assert saved.steps["asking"] == asked  # answered before the generation's checkpoint
    assert s.executor.finals == [(genome_of[asked["key"]],
                                  derive_seed(cfg.evolution.seed, asked["key"]), tmp_path / "before")]
