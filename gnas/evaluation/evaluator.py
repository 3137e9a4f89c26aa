"""Evaluator: genome -> trained network -> validation error, as an EvalResult.

A plain class holding the data set once; the in-process executor calls it
directly and each Ray actor holds one. Every failure of a candidate (build error,
out of memory, NaN loss) becomes a failed result with its reason; only bugs in
gnas itself escape.
"""
from __future__ import annotations

import os
import platform
import time
import traceback
from typing import Any

import keras
import numpy as np

from gnas.architecture import Architecture, complexity
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import EvaluationFailed
from gnas.evaluation.builder import build_model
from gnas.evaluation.trainer import compile_model, fit, score
from gnas.results import EvalResult, EvalTask, failed
from gnas.search_space import SearchSpace, str_to_bits
from gnas.space_factory import make_space


class Evaluator:
    """Trains and scores candidates of one search space on one data set."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, worker: str = "local") -> None:
        self.cfg = cfg
        self.data = dataset
        self.space: SearchSpace = make_space(cfg, dataset)
        self.worker = worker
        self.node = platform.node()

    def batch_size(self, arch: Architecture) -> int:
        return self.cfg.train.batch_size or 32

    def build(self, arch: Architecture, seed: int) -> keras.Model:
        """A fresh model with initial weights drawn from ``seed``."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        return build_model(arch, weight_scale=self.cfg.train.weight_scale,
                           bn_momentum=self.cfg.train.bn_momentum)

    def train(self, arch: Architecture, seed: int) -> keras.Model:
        """Build and train for the configured epochs; raises EvaluationFailed."""
        model = self.build(arch, seed)
        compile_model(model, arch)
        fit(model, self.data.x_train, self.data.y_train, epochs=self.cfg.train.epochs,
            batch_size=self.batch_size(arch))
        return model

    def evaluate(self, task: EvalTask) -> EvalResult:
        """Train and score one candidate; never raises for a bad candidate."""
        if task.kind == "prune":
            from gnas.evaluation.prune_eval import evaluate_prune

            return evaluate_prune(self, task)
        start = time.perf_counter()
        arch = self.space.decode(str_to_bits(task.genome))
        params, flops = complexity(arch)
        extra: dict[str, Any] = dict(params=params, flops=flops, worker=self.worker, node=self.node)
        try:
            model = self.train(arch, task.seed)
            val = score(model, arch, self.data.x_val, self.data.y_val)
        except EvaluationFailed as exc:
            return failed(task, str(exc), seconds=time.perf_counter() - start, **extra)
        except Exception as exc:  # noqa: BLE001 - a bad candidate must not stop the search
            if _is_bug(exc):
                raise
            return failed(task, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                          seconds=time.perf_counter() - start, **extra)
        return EvalResult(key=task.key, genome=task.genome, status="ok", val_error=val["error"],
                          val_loss=val["loss"], seconds=time.perf_counter() - start,
                          kind=task.kind, generation=task.generation,
                          metrics={"pid": os.getpid()}, **extra)

    def final(self, genome: str, seed: int,
              options: dict[str, Any] | None = None) -> tuple[keras.Model, dict[str, float]]:
        """Rebuild the best network exactly as in the search, then score val and test.

        Training is deterministic per seed, so this is the network the search scored;
        a pruned network is rebuilt by replaying its recorded cuts (``options``).
        The test split is touched here only.
        """
        arch = self.space.decode(str_to_bits(genome))
        if options:
            from gnas.evaluation.prune_eval import rebuild_pruned

            model, arch = rebuild_pruned(self, genome, seed, options)
        else:
            model = self.train(arch, seed)
        val = score(model, arch, self.data.x_val, self.data.y_val)
        test = score(model, arch, self.data.x_test, self.data.y_test)
        return model, {"val_error": val["error"], "test_error": test["error"],
                       "test_score": 100.0 * (1.0 - test["error"])}


def _is_bug(exc: Exception) -> bool:
    """Errors that point at gnas rather than at the candidate."""
    return isinstance(exc, (NameError, AttributeError, ImportError, KeyboardInterrupt))
