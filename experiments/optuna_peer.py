"""The peer the fidelity benchmark compares with: Optuna's TPE sampler with successive halving.

What a user of a hyper-parameter tool would run on the same problem: an Optuna
study (``TPESampler``, ``SuccessiveHalvingPruner``) whose parameters are gnas's
own genome bits (the same search space: every bit a categorical 0/1, repaired and
decoded as gnas decodes them), each trial a network trained one epoch at a time
for up to ``fidelity.max_epochs``, reporting its validation error after every
epoch so the pruner stops the unpromising ones at the rungs
(``fidelity.min_epochs`` times powers of ``fidelity.eta``). The study stops when
its epochs reach the search budget; a trial running then stops where it is. A
network suggested twice is trained twice, as Optuna does.

The delivered model is made exactly as gnas makes its own: the best trial that
reached the last rung (else the best of the highest step reached) is trained to
convergence once per final seed (``1 + evolution.final_seeds``, gnas's final
training) and each training is scored on the test split.

The run directory gets what the benchmark reads from a gnas run: every trial as a
row of ``evaluations.db`` (its epochs in ``metrics["epochs"]``, keyed per trial so
epochs are counted per trial) and ``best/summary.json``. Optuna is an optional
extra (``pip install optuna``), imported here only.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from gnas.backend.evaluator import Evaluator
from gnas.backend.trainer import compile_model, fit, score
from gnas.config import RunConfig
from gnas.datasets import load_for_run
from gnas.errors import EvaluationFailed
from gnas.genome.architecture import Architecture, complexity
from gnas.genome.space import bits_to_str, str_to_bits
from gnas.records import WORST_ERROR, EvalResult, Kind, Status, derive_seed
from gnas.runs.atomic import atomic_write_text
from gnas.runs.store import EvaluationStore
from gnas.search.evaluation import derived_key
from gnas.search.final import delivered_seeds


def trial_key(key: str, number: int) -> str:
    """The row key of trial ``number`` of network ``key`` (one row per trial, duplicates included)."""
    return derived_key(key, f"optuna-trial-{number}")


class Peer:
    """One Optuna study on a gnas configuration's space, data and training, within an epoch budget."""

    def __init__(self, cfg: RunConfig, path: Path, search_epochs: int) -> None:
        self.cfg = cfg
        self.path = path
        self.search_epochs = search_epochs
        self.data = load_for_run(cfg)
        self.evaluator = Evaluator(cfg, self.data, worker="optuna")
        self.space = self.evaluator.space
        self.spent = 0
        self.store: EvaluationStore | None = None

    def run(self) -> dict[str, Any]:
        """The study, then the final trainings of its best network; the summary written."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        fi, seed = self.cfg.fidelity, self.cfg.evolution.seed
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=fi.min_epochs,
                                                          reduction_factor=fi.eta))
        self.path.mkdir(parents=True, exist_ok=True)
        self.store = EvaluationStore(self.path / "evaluations.db")
        try:
            while self.spent < self.search_epochs:
                study.optimize(self.objective, n_trials=1)
        finally:
            self.store.close()
        summary = self.deliver(self.best(study))
        (self.path / "best").mkdir(exist_ok=True)
        atomic_write_text(self.path / "best" / "summary.json", json.dumps(summary, indent=1))
        return summary

    def bits(self, trial: Any) -> tuple[int, ...]:
        """The trial's genome: one categorical 0/1 per gene, repaired as gnas repairs a child."""
        raw = tuple(int(trial.suggest_categorical(f"g{i:03d}", [0, 1])) for i in range(self.space.length))
        return self.space.repair(raw)

    def objective(self, trial: Any) -> float:
        """Train the trial's network epoch by epoch; report each validation error; prune at rungs."""
        import optuna

        bits = self.bits(trial)
        genome = bits_to_str(bits)
        arch = self.space.decode(bits)
        key = trial_key(arch.key(), trial.number)
        start = time.perf_counter()
        model = self.evaluator.build(arch, derive_seed(self.cfg.evolution.seed, key))
        compile_model(model, arch)
        epochs, error, loss, message, pruned = 0, WORST_ERROR, math.nan, "", False
        try:
            while epochs < self.cfg.fidelity.max_epochs and self.spent < self.search_epochs:
                fit(model, self.data.x_train, self.data.y_train, epochs=1,
                    batch_size=self.evaluator.batch_size(arch))
                epochs += 1
                self.spent += 1
                scored = score(model, arch, self.data.x_val, self.data.y_val)
                error, loss = scored["error"], scored["loss"]
                trial.report(error, epochs)
                if trial.should_prune():
                    pruned = True
                    break
        except EvaluationFailed as exc:
            message, error = str(exc), WORST_ERROR
        self.record(key, genome, arch, epochs, error, loss, message, time.perf_counter() - start)
        if message:
            return error
        if pruned or epochs < self.cfg.fidelity.max_epochs:
            raise optuna.TrialPruned()
        return error

    def record(self, key: str, genome: str, arch: Architecture, epochs: int, error: float, loss: float,
               message: str, seconds: float) -> None:
        """One trial as a row of the run's evaluation store."""
        params, flops = complexity(arch)
        result = EvalResult(key=key, genome=genome, status=Status.FAILED if message else Status.OK,
                            val_error=error, val_loss=loss, params=params, flops=flops, seconds=seconds,
                            message=message, worker="optuna", kind=Kind.SEARCH,
                            metrics={"epochs": epochs, "network": arch.key()})
        assert self.store is not None
        self.store.add(result, error)

    def best(self, study: Any) -> tuple[str, float]:
        """The best trial that reached the last rung, else the best at the highest step reached."""
        import optuna

        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            t = min(done, key=lambda t: (t.value, t.number))
            return self.genome_of(t), float(t.value)
        reached = [t for t in study.trials if t.intermediate_values]
        top = max(max(t.intermediate_values) for t in reached)
        t = min((t for t in reached if top in t.intermediate_values),
                key=lambda t: (t.intermediate_values[top], t.number))
        return self.genome_of(t), float(t.intermediate_values[top])

    def genome_of(self, trial: Any) -> str:
        raw = tuple(int(trial.params[f"g{i:03d}"]) for i in range(self.space.length))
        return bits_to_str(self.space.repair(raw))

    def deliver(self, best: tuple[str, float]) -> dict[str, Any]:
        """gnas's final training of the chosen network, once per final seed, each scored on test."""
        genome, val_error = best
        arch = self.space.decode(str_to_bits(genome))
        key = arch.key()
        runs = [self.evaluator.final(genome, s)[1] for s in delivered_seeds(self.cfg.evolution, key)]
        tests = [r["test_score"] for r in runs]
        out: dict[str, Any] = {"key": key, "genome": genome, "val_error": val_error,
                               "test_score": tests[0], "test_scores": tests,
                               "test_score_mean": float(np.mean(tests)), "search_epochs": self.spent}
        if all("final_training" in r for r in runs):
            out["final_epochs"] = [r["final_training"]["epochs"] for r in runs]
        return out


def run_peer(cfg: RunConfig, path: Path, search_epochs: int) -> dict[str, Any]:
    """An Optuna TPE + successive-halving study of ``search_epochs`` epochs, then gnas's final training."""
    return Peer(cfg, path, search_epochs).run()
