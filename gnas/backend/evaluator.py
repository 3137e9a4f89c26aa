"""Evaluator: genome -> trained network -> validation error, as an EvalResult.

A plain class holding the data set once; the in-process executor calls it
directly and each Ray actor holds one. Every failure of a candidate (build error,
out of memory, NaN loss) becomes a failed result with its reason; only bugs in
gnas itself escape.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
import traceback
from pathlib import Path
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import keras

from gnas.genome import memory
from gnas.genome.architecture import Architecture, complexity
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import EvaluationFailed
from gnas.backend import runtime
from gnas.backend.builder import build_model
from gnas.backend.convergence import Converged, EpochReport, train_to_convergence
from gnas.backend.export import zero_masks
from gnas.backend.inheritance import inherited_metrics, layer_weights
from gnas.backend.masking import apply_masks
from gnas.backend.trainer import compile_model, fit, score
from gnas.pruning.records import PruneOptions
from gnas.runs import heartbeat
from gnas.records import SEARCH_EPOCHS, EvalResult, EvalTask, Kind, failed, fidelity_metrics
from gnas.genome.space import SearchSpace, str_to_bits
from gnas.genome.factory import make_space

if TYPE_CHECKING:
    from gnas.backend.prune_eval import Snapshot
    from gnas.backend.superset import Shape, Superset

FALLBACK_MEMORY_BYTES = 2 * 2**30  # planned with when /proc/meminfo cannot be read


class Evaluator:
    """Trains and scores candidates of one search space on one data set.

    It is the backend's training context: the configuration, the data, the
    search space and how to build and train a network, plus what this process
    keeps between evaluations (:attr:`prune_states`, the pruning replay's
    reached states; :attr:`supersets`, the traced dense supersets by shape).
    Kept here and not in modules, two evaluators in one process share nothing.
    """

    def __init__(self, cfg: RunConfig, dataset: Dataset, worker: str = "local",
                 time_limit: bool = True) -> None:
        """``time_limit``: enforce ``train.eval_timeout`` here, at batch boundaries. A Ray
        actor's evaluator does not: its pool enforces the limit from outside (it also ends
        an actor that hangs), with the limit the driver holds now."""
        self.cfg = cfg
        self.time_limit = time_limit
        self.full_data = dataset  # the final training's: the whole training split
        self.data = search_subset(dataset, cfg.train.search_samples)
        self.space: SearchSpace = make_space(cfg, dataset)
        self.worker = worker
        self.node = platform.node()
        self._device_bytes: int | None = None
        self.prune_states: OrderedDict[str, Snapshot] = OrderedDict()
        self.supersets: dict[Shape, Superset] = {}

    def _eval_timeout(self) -> float:
        """The limit this evaluator enforces itself (0: none; see ``__init__``)."""
        return self.cfg.train.eval_timeout if self.time_limit else 0.0

    def batch_size(self, arch: Architecture) -> int:
        """The configured batch, or with ``train.batch_size = 0`` the largest that fits.

        Auto: the largest batch whose training step (seed 002's operational memory)
        fits in 80 % of the device memory, capped by the training-set size; a
        network whose model alone does not fit fails as out of memory.
        """
        if self.cfg.train.batch_size:
            return self.cfg.train.batch_size
        if self._device_bytes is None:
            self._device_bytes = device_memory_bytes(self.cfg)
        batch = memory.largest_batch(arch, self._device_bytes)
        if batch < 1:
            est = memory.estimate(arch)
            raise EvaluationFailed(f"out of memory: the model and its optimiser need "
                                   f"{est.fixed_bytes / 2**20:.1f} MiB, more than 80 % of the "
                                   f"{self._device_bytes / 2**20:.0f} MiB of device memory")
        return int(min(batch, len(self.data.x_train)))

    def memory_metrics(self, arch: Architecture) -> dict[str, Any]:
        """Memory estimates of ``arch`` at the batch it trains with, for the evaluation row."""
        try:
            batch = self.batch_size(arch)
        except EvaluationFailed:
            batch = 1
        return memory.estimate(arch).metrics(batch)

    def build(self, arch: Architecture, seed: int, *, free_memory: bool = True) -> keras.Model:
        """A fresh model with initial weights drawn from ``seed``.

        ``free_memory=False`` skips the garbage collection of the session reset,
        for a group whose other models are still alive.
        """
        keras.backend.clear_session(free_memory=free_memory)
        runtime.set_precision(self.cfg.train.mixed_precision)
        keras.utils.set_random_seed(seed)
        return build_model(arch, weight_scale=self.cfg.train.weight_scale,
                           bn_momentum=self.cfg.train.bn_momentum)

    def train(self, arch: Architecture, seed: int, epochs: int = 0) -> keras.Model:
        """Build and train for ``epochs`` (0: the configured epochs); raises EvaluationFailed.

        With ``train.group_size`` > 1 the search trains with the population
        trainer's batch order, so a network rebuilt here (the final retrain, a
        pruning base) trains the same way, as a group of one, and is the network
        the search scored.
        """
        if self.cfg.train.group_size > 1:
            from gnas.backend.population import train_one

            return train_one(self, arch, seed, epochs)
        model = self.build(arch, seed)
        compile_model(model, arch)
        fit(model, self.data.x_train, self.data.y_train, epochs=epochs or self.cfg.train.epochs,
            batch_size=self.batch_size(arch))
        return model

    def train_task(self, arch: Architecture, task: EvalTask) -> tuple[keras.Model, dict[str, Any]]:
        """Train a search task one at a time: from scratch, from inherited layers, or on from its
        saved rung; returns the model and the row's record of what it inherited.

        A promotion continues from the saved weights and momenta; Keras' shuffle
        draws its own order for the further epochs (the population trainer, with
        ``train.group_size`` > 1, continues the member's own order exactly).
        """
        if not task.resume_from and not task.checkpoint and not task.inherit:
            return self.train(arch, task.seed, task.epochs), {}
        from gnas.backend.checkpoint import TrainingState

        model = self.build(arch, task.seed)
        compile_model(model, arch)
        model.optimizer.build(model.trainable_variables)
        lineage: dict[str, Any] = {}
        if task.resume_from:
            TrainingState.load(Path(task.checkpoint_from), task.resume_from).restore(model)
        else:
            lineage = inherited_metrics(model, task)
        epochs = task.epochs_to_train(self.cfg.train.epochs)
        fit(model, self.data.x_train, self.data.y_train, epochs=epochs,
            batch_size=self.batch_size(arch))
        if task.checkpoint:
            TrainingState.of(model, task.resume_from + epochs).save(Path(task.checkpoint))
        return model, lineage

    def evaluate(self, task: EvalTask) -> EvalResult:
        """Train and score one candidate; never raises for a bad candidate."""
        if task.kind == "prune":
            from gnas.backend.prune_eval import evaluate_prune

            return self._with_memory(evaluate_prune(self, task))
        start = time.perf_counter()
        arch = self.space.decode(str_to_bits(task.genome))
        params, flops = complexity(arch)
        mem = self.memory_metrics(arch)
        extra: dict[str, Any] = dict(params=params, flops=flops, worker=self.worker, node=self.node)
        try:
            with heartbeat.time_limit(self._eval_timeout()):
                model, lineage = self.train_task(arch, task)
            val = score(model, arch, self.data.x_val, self.data.y_val)
        except EvaluationFailed as exc:
            return failed(task, str(exc), seconds=time.perf_counter() - start, metrics=mem, **extra)
        except Exception as exc:  # noqa: BLE001 - a bad candidate must not stop the search
            if _is_bug(exc):
                raise
            return failed(task, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                          seconds=time.perf_counter() - start, metrics=mem, **extra)
        return EvalResult(key=task.key, genome=task.genome, status="ok", val_error=val["error"],
                          val_loss=val["loss"], seconds=time.perf_counter() - start,
                          kind=task.kind, generation=task.generation,
                          metrics={**mem, "pid": os.getpid(), **fidelity_metrics(task), **lineage},
                          weights=layer_weights(model) if task.keep_weights else None, **extra)

    def group_signature(self, task: EvalTask) -> tuple | None:
        """What members of one training group must share: family, stages, batch, epochs to train.

        Conv members share their stage widths (exact member graphs in one step
        waste nothing then). Dense members share only their number of stages:
        the superset pads a narrower stage with zero units, and
        :meth:`group_rank` puts members of similar widths side by side, so the
        padding stays small. ``None`` for a genome that cannot be decoded or
        sized; it trains alone and the solo path reports why.
        """
        try:
            arch = self.space.decode(str_to_bits(task.genome))
            shape = len(arch.stages) if arch.family == "dense" else tuple(s.width for s in arch.stages)
            return (arch.family, shape, self.batch_size(arch), task.epochs_to_train(self.cfg.train.epochs))
        except Exception:  # noqa: BLE001 - reported by the solo evaluation
            return None

    def group_rank(self, task: EvalTask) -> tuple:
        """Where a task goes among those of its signature: by stage widths, so neighbours match."""
        try:
            return tuple(s.width for s in self.space.decode(str_to_bits(task.genome)).stages)
        except Exception:  # noqa: BLE001 - such a task is grouped alone anyway
            return ()

    def step_bytes(self, task: EvalTask) -> int:
        """Operational memory of one training step of ``task`` (seed 002), for grouping."""
        try:
            arch = self.space.decode(str_to_bits(task.genome))
            return memory.estimate(arch).operational_bytes(self.batch_size(arch))
        except Exception:  # noqa: BLE001 - such a task is grouped alone anyway
            return 0

    def group_budget_bytes(self) -> int:
        """The memory a whole group may plan with: 80 % of this evaluation's device share."""
        if self._device_bytes is None:
            self._device_bytes = device_memory_bytes(self.cfg)
        return int(self._device_bytes * memory.DEVICE_FRACTION)

    def evaluate_group(self, tasks: list[EvalTask]) -> list[EvalResult]:
        """Train ``tasks`` together (one result each, in order).

        With ``train.group_size`` > 1 even a group of one trains with the
        population trainer, so a score never depends on how tasks were grouped;
        pruning tasks keep their own loop.
        """
        if self.cfg.train.group_size <= 1 or any(t.kind == Kind.PRUNE for t in tasks):
            return [self.evaluate(t) for t in tasks]
        from gnas.backend.population import train_group

        # the limit is per evaluation: a group of P members may run P times it (as on Ray)
        with heartbeat.time_limit(self._eval_timeout(), len(tasks)):
            return train_group(self, tasks)

    def final(self, genome: str, seed: int, options: dict[str, Any] | None = None,
              report: EpochReport | None = None) -> tuple[keras.Model, dict[str, Any]]:
        """The network delivered for ``genome``, scored on val and test.

        With ``final.max_epochs`` > 0 it is trained from its initial weights
        (``seed``) to convergence (:mod:`gnas.backend.convergence`; ``report``
        sees every epoch) and ``metrics["final_training"]`` says how long.
        With 0 it is rebuilt exactly as in the search (training is
        deterministic per seed, so it is the network the search scored). A
        pruned network is rebuilt by replaying its recorded cuts (``options``)
        and keeps its pruned weights at zero. The test split is touched here only.
        """
        arch = self.space.decode(str_to_bits(genome))
        options = dict(options or {})
        search_epochs = int(options.pop(SEARCH_EPOCHS, 0))  # the rung it was scored at (sha)
        converged = None
        if self.cfg.final.max_epochs > 0:
            model, arch, converged = self._converge(genome, arch, seed, options, report)
        elif options:
            from gnas.backend.prune_eval import rebuild_pruned

            model, arch = rebuild_pruned(self, genome, seed, PruneOptions.from_dict(options))
        else:
            model = self.train(arch, seed, search_epochs)
        val = score(model, arch, self.data.x_val, self.data.y_val)
        test = score(model, arch, self.data.x_test, self.data.y_test)
        metrics: dict[str, Any] = {"val_error": val["error"], "test_error": test["error"],
                                   "test_score": 100.0 * (1.0 - test["error"])}
        if converged is not None:
            metrics["final_training"] = converged.to_dict()
        return model, metrics

    def _converge(self, genome: str, arch: Architecture, seed: int, options: dict[str, Any],
                  report: EpochReport | None) -> tuple[keras.Model, Architecture, Converged]:
        """Initial weights from ``seed`` (a pruned network: its structure, re-drawn, masks kept), then
        training to convergence."""
        masks: dict[str, Any] = {}
        if options:
            from gnas.backend.prune_eval import rebuild_pruned

            pruned, arch = rebuild_pruned(self, genome, seed, PruneOptions.from_dict(options))
            masks = zero_masks(pruned)
            keras.utils.set_random_seed(seed)
            model = keras.models.clone_model(pruned)
            apply_masks(model, masks)
        else:
            model = self.build(arch, seed)
        compile_model(model, arch)
        final = self.cfg.final
        data = self.full_data
        converged = train_to_convergence(
            model, arch, data.x_train, data.y_train, data.x_val, data.y_val,
            max_epochs=final.max_epochs, patience=final.patience, batch_size=self.batch_size(arch),
            report=report, after_step=(lambda m: apply_masks(m, masks)) if masks else None,
            lr_factor=final.lr_factor, lr_patience=final.lr_patience)
        return model, arch, converged

    def _with_memory(self, result: EvalResult) -> EvalResult:
        """Add the memory estimates of the result's own genome where it lacks them."""
        if "operational_bytes" in result.metrics:
            return result
        arch = self.space.decode(str_to_bits(result.genome))
        return dataclasses.replace(result, metrics={**self.memory_metrics(arch), **result.metrics})


def search_subset(dataset: Dataset, samples: int) -> Dataset:
    """The data the search trains on: the first ``samples`` of the training split (0: all of it).

    The training split is already in a seeded random order, so its first
    samples are a random subset; validation and test stay whole, so scores
    compare with those of the final training, which trains on every sample.
    """
    if not samples or samples >= len(dataset.x_train):
        return dataset
    return dataclasses.replace(dataset, x_train=dataset.x_train[:samples],
                               y_train=dataset.y_train[:samples])


def device_memory_bytes(cfg: RunConfig) -> int:
    """Memory one evaluation may plan with: its GPU's, else its share of system RAM.

    GPU: the memory TensorFlow reports for the first GPU it sees (the per-process
    limit when one is set), times ``parallel.gpus_per_worker`` when workers share
    a GPU. CPU: MemTotal of ``/proc/meminfo`` divided by the number of workers on
    this machine; the 20 % left by :data:`gnas.genome.memory.DEVICE_FRACTION` is for the
    operating system, the data set and TensorFlow itself (seed 002).
    """
    gpu = _gpu_memory_bytes()
    if gpu:
        from gnas.backend import runtime

        if runtime.gpu_memory_limit_mb():  # the process limit is already this worker's share
            return gpu
        share = cfg.parallel.gpus_per_worker
        return int(gpu * share) if 0 < share < 1 else gpu
    total = memory.system_memory_bytes() or FALLBACK_MEMORY_BYTES
    return total // max(1, cfg.parallel.workers)


def _gpu_memory_bytes() -> int:
    """Bytes TensorFlow may use on its first GPU, 0 without a GPU."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return 0
    from tensorflow.python.client import device_lib

    limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    return int(limits[0]) if limits else 0


def _is_bug(exc: Exception) -> bool:
    """Errors that point at gnas rather than at the candidate."""
    return isinstance(exc, (NameError, AttributeError, ImportError))
