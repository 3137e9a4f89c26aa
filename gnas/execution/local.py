"""Executors: where evaluations run. The in-process one lives here; Ray in ``ray_pool``.

An executor takes EvalTasks and yields EvalResults as each one finishes (in any
order), so the engine can commit every result the moment it exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.execution.groups import form_groups
from gnas.records import EvalResult, EvalTask
from gnas.search.evaluation import Executor


class LocalExecutor:
    """Evaluates in this process, one task (or, with ``train.group_size`` > 1, one group) after another."""

    def __init__(self, cfg: RunConfig, dataset: Dataset) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self._evaluator = None

    @property
    def evaluator(self):
        if self._evaluator is None:
            from gnas.backend import runtime

            runtime.configure(self.cfg.train.threads)
            from gnas.backend.evaluator import Evaluator

            self._evaluator = Evaluator(self.cfg, self.dataset)
        return self._evaluator

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[EvalResult]:
        size = self.cfg.train.group_size
        if size <= 1:
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


def make_executor(cfg: RunConfig, dataset: Dataset) -> Executor:
    """The in-process executor for 0 or 1 workers, else a Ray actor pool.

    Ray is imported only here and only for a Ray run, so a single-machine run
    works without the ``gnas[ray]`` extra.
    """
    if not uses_ray(cfg):
        return LocalExecutor(cfg, dataset)
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
