"""Executors: where evaluations run. The in-process one lives here; Ray in ``ray_pool``.

An executor takes EvalTasks and yields EvalResults as each one finishes (in any
order), so the engine can commit every result the moment it exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import ConfigError
from gnas.execution.groups import form_groups
from gnas.records import EvalResult, EvalTask
from gnas.search.evaluation import Executor
from gnas.tabular.lookup import table_evaluator


class TaskEvaluator(Protocol):
    """What an executor asks of an evaluator: one task's result.

    The Keras evaluator also trains groups (``evaluate_group``) and delivers the
    final network (``final``); an evaluator without them is asked one task at a
    time, and its space has no final training.
    """

    def evaluate(self, task: EvalTask) -> EvalResult: ...


#: ``(config, data set or None, worker name) -> evaluator``, called where the evaluations run.
EvaluatorFactory = Callable[[RunConfig, "Dataset | None", str], TaskEvaluator]


def keras_evaluator(cfg: RunConfig, dataset: Dataset | None, worker: str = "") -> TaskEvaluator:
    """The Keras evaluator (trains every network), in a process set up for TensorFlow."""
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    from gnas.backend.evaluator import Evaluator

    return Evaluator(cfg, dataset, worker=worker) if worker else Evaluator(cfg, dataset)


#: The evaluator of each built-in space (``space.kind``); a user's evaluator object replaces it.
EVALUATORS: dict[str, EvaluatorFactory] = {"genetic_cnn": keras_evaluator, "nb201": table_evaluator}


def given_evaluator(evaluator: TaskEvaluator) -> EvaluatorFactory:
    """The factory of an evaluator object a user passed (it runs in this process)."""
    def factory(cfg: RunConfig, dataset: Dataset | None, worker: str = "") -> TaskEvaluator:
        return evaluator
    return factory


class LocalExecutor:
    """Evaluates in this process, one task (or, with ``train.group_size`` > 1, one group) after another."""

    def __init__(self, cfg: RunConfig, dataset: Dataset | None,
                 factory: EvaluatorFactory = keras_evaluator) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.factory = factory
        self._evaluator: Any = None

    @property
    def evaluator(self) -> Any:
        if self._evaluator is None:
            self._evaluator = self.factory(self.cfg, self.dataset, "")
        return self._evaluator

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[EvalResult]:
        size = self.cfg.train.group_size
        if size <= 1 or not hasattr(self.evaluator, "evaluate_group"):
            for task in tasks:
                yield self.evaluator.evaluate(task)
            return
        ev = self.evaluator
        for group in form_groups(list(tasks), size, ev.group_signature, ev.step_bytes,
                                 ev.group_budget_bytes(), rank=ev.group_rank):
            yield from ev.evaluate_group(group)

    def final(self, genome: str, seed: int, out_dir: Path,
              options: dict[str, Any] | None = None,
              report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train the network delivered for ``genome``, save ``out_dir/model.keras``, return its scores.

        ``report`` sees every epoch of a final training to convergence.
        """
        model, metrics = self.evaluator.final(genome, seed, options, report)
        out_dir.mkdir(parents=True, exist_ok=True)
        from gnas.backend.saving import save_keras
        from gnas.datasets.preprocessing import preprocessing_record

        # behind its data's preparation: the saved model takes raw inputs
        save_keras(model, out_dir / "model.keras", preprocessing_record(self.dataset))
        return metrics

    def close(self) -> None:
        self._evaluator = None


def uses_ray(cfg: RunConfig) -> bool:
    """Whether a run evaluates on Ray: more than one worker, or a cluster to join."""
    return cfg.parallel.workers > 1 or bool(cfg.parallel.ray_address)


def make_executor(cfg: RunConfig, dataset: Dataset | None,
                  factory: EvaluatorFactory = keras_evaluator) -> Executor:
    """The in-process executor for 0 or 1 workers, else a Ray actor pool.

    Ray is imported only here and only for a Ray run, so a single-machine run
    works without the ``gnas[ray]`` extra. Only the Keras evaluator runs on Ray;
    any other (a table lookup, a user's object) runs in this process.
    """
    if not uses_ray(cfg):
        return LocalExecutor(cfg, dataset, factory)
    if factory is not keras_evaluator:
        raise ConfigError("this run's evaluator runs in this process only; leave --workers and "
                          "--ray-address out (parallel.workers 0 or 1).")
    from gnas.execution.ray_connect import require_ray

    require_ray(cfg)
    from gnas.backend import runtime
    from gnas.execution.ray_pool import RayExecutor

    runtime.keep_off_gpu()
    return RayExecutor(cfg, dataset)


def check_parallel(cfg: RunConfig) -> None:
    """Refuse impossible worker, GPU or cluster settings in seconds, before anything is written."""
    if uses_ray(cfg):
        from gnas.execution.ray_plan import plan_pool

        plan_pool(cfg)
