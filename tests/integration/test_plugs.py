"""The parts of a run plug in as objects: a strategy, a schedule, and a search space with its
evaluator, all defined here and nowhere in gnas, run through ``gnas.evolve`` and resume."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pytest

import gnas
from gnas.errors import ConfigError
from gnas.records import EvalResult, EvalTask, Operator, Status
from gnas.search.operators import Offspring
from gnas.search.step import Generation
from gnas.search.strategies import Proposal

GNAS = Path(gnas.__file__).resolve().parent
BITS = 10


class OnesSpace:
    """Ten bits; a network is its bit string, and the first four bits are its connections."""

    name = "ones"
    length = BITS
    l = 4  # noqa: E741
    c_max = 1
    trains = False
    needs_data = False

    def check(self, bits: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(b) for b in bits)

    def repair(self, bits: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(bits)

    def key(self, bits: Sequence[int]) -> str:
        return "".join(str(int(b)) for b in bits)

    def random_bits(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(b) for b in rng.integers(0, 2, BITS))

    def connection_genes(self, bits: Sequence[int]) -> tuple[int, ...]:
        return tuple(bits[:self.l])

    def hyper(self, bits: Sequence[int]) -> dict[str, float]:
        return {"mutation_rate": 0.5, "crossover_rate": 0.5}

    def describe(self, bits: Sequence[int]) -> str:
        return f"ones({self.key(bits)})"

    def export(self, bits: Sequence[int]) -> dict[str, Any]:
        return {"bits": self.key(bits)}


class OnesEvaluator:
    """Scores a bit string by a formula: the error is the share of zeros, weighted by position."""

    def evaluate(self, task: EvalTask) -> EvalResult:
        bits = [int(c) for c in task.genome]
        error = sum((1 - b) * (k + 1) for k, b in enumerate(bits)) / (BITS * (BITS + 1) / 2)
        return EvalResult(key=task.key, genome=task.genome, status=Status.OK, val_error=error,
                          seconds=1.0, kind=task.kind, generation=task.generation)


class HillClimber:
    """Each individual's child flips one bit; the better of the two survives. Counts its steps."""

    name = "hill-climber"

    def __init__(self) -> None:
        self.steps = 0

    def initial(self, drawn, rng):
        return drawn

    def offspring(self, view, rng) -> Proposal:
        children = [Offspring(flip(bits, rng), bits, Operator.MUTATION) for bits in view.population]
        return Proposal(children, lambda bits, rng: flip(bits, rng))

    def survivors(self, view, generation: int, offspring, results) -> Generation:
        self.steps += 1
        fit = view.fitness_model.fitness
        pairs = [(o.bits, fit(r), r.key) if fit(r) < f else (p, f, k)
                 for o, r, p, f, k in zip(offspring, results, view.population, view.fitness, view.keys)]
        return Generation(generation, [p[0] for p in pairs], [p[1] for p in pairs],
                          [p[2] for p in pairs], list(offspring))

    def front(self, evaluations):
        return None

    def get_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))


class CountingSchedule:
    """Full fidelity, counting the tasks it placed."""

    name = "counting"

    def __init__(self) -> None:
        self.placed = 0

    def first(self, task: EvalTask) -> EvalTask:
        self.placed += 1
        return task

    def promotions(self, generation: int) -> list[EvalTask]:
        return []


def flip(bits, rng) -> tuple[int, ...]:
    out = list(bits)
    out[int(rng.integers(len(out)))] ^= 1
    return tuple(out)


def plugs() -> dict[str, Any]:
    return {"space": OnesSpace(), "evaluator": OnesEvaluator(), "strategy": HillClimber(),
            "schedule": CountingSchedule()}


def evolve(path: Path, generations: int, **parts: Any):
    return gnas.evolve(run_dir=path, generations=generations, population=4, init="random",
                       seed=3, **parts)


def test_own_parts_run_and_resume_as_one_uninterrupted_run(tmp_path):
    parts = plugs()
    whole = evolve(tmp_path / "whole", 6, **parts)
    assert parts["schedule"].placed == len(whole.evaluations) > 4
    assert parts["strategy"].steps == 6
    assert whole.summary["description"].startswith("ones(") and whole.summary["trained"] is False
    config = (tmp_path / "whole" / "config.toml").read_text()
    assert 'strategy = "hill-climber"' in config and 'space = "ones"' in config

    evolve(tmp_path / "split", 3, **plugs())
    again = plugs()
    resumed = gnas.resume(tmp_path / "split", generations=6, **again)
    assert again["strategy"].steps == 6  # its state came back from the checkpoint
    assert [(e["key"], e["val_error"]) for e in resumed.evaluations] == \
        [(e["key"], e["val_error"]) for e in whole.evaluations]
    assert resumed.summary["key"] == whole.summary["key"]


def test_resume_without_the_run_s_objects_is_refused_in_one_line(tmp_path):
    evolve(tmp_path / "run", 1, **plugs())
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    parts = plugs()
    del parts["strategy"]
    with pytest.raises(ConfigError, match="hill-climber.*pass the same object again"):
        gnas.resume(tmp_path / "run", generations=2, **parts)
    done = subprocess.run([sys.executable, "-m", "gnas", "resume", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "pass the same object again" in done.stderr
    assert before == {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}


def test_a_space_object_comes_with_its_evaluator(tmp_path):
    with pytest.raises(ConfigError, match="evaluator="):
        evolve(tmp_path / "run", 1, space=OnesSpace())
    assert not (tmp_path / "run").exists()


def test_no_file_of_gnas_names_the_test_s_classes():
    names = ("OnesSpace", "OnesEvaluator", "HillClimber", "CountingSchedule")
    for path in GNAS.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not any(n in text for n in names), path
