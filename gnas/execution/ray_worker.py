"""The body of one Ray actor: an Evaluator in a process set up for TensorFlow.

An actor sets its TensorFlow threads through the environment before TensorFlow
is imported and, on a GPU, turns on memory growth or, for a fraction of a GPU,
a hard memory limit: Ray's fractional GPUs are bookkeeping, not limits, and
TensorFlow otherwise takes the whole device in every process. The pool that
starts these actors is ``gnas.execution.ray_pool``; only genomes and plain
results cross to and from them.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from typing import Any

from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.execution.groups import form_groups
from gnas.records import EvalResult, EvalTask

GPU_MEMORY_SHARE = 0.9      # of a worker's GPU fraction; the rest is CUDA's own context


class Worker:
    """The body of one actor: an Evaluator in a process set up for TensorFlow."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, name: str, threads: int,
                 gpu_fraction: float) -> None:
        import ray

        from gnas.backend import runtime

        runtime.configure(threads, gpu_memory_mb=gpu_memory_mb(gpu_fraction),
                          use_gpu=gpu_fraction > 0)
        from gnas.backend.evaluator import Evaluator

        self.evaluator = Evaluator(cfg, dataset, worker=name, time_limit=False)  # the pool's to enforce
        node_id = ray.get_runtime_context().get_node_id()
        self.node = f"{ray.util.get_node_ip_address()}/{node_id[:12]}"

    def info(self) -> dict[str, Any]:
        """Process id and node, once the actor is ready to evaluate."""
        return {"pid": os.getpid(), "node": self.node}

    def evaluate(self, tasks: list[EvalTask], attempt: int) -> list[EvalResult]:
        """Train one group (trained together when it has several members)."""
        return [dataclasses.replace(result, node=self.node, attempts=attempt)
                for result in self.evaluator.evaluate_group(tasks)]

    def groups(self, tasks: list[EvalTask], size: int) -> list[list[EvalTask]]:
        """The training groups of ``tasks`` as this worker's evaluator sizes them."""
        ev = self.evaluator
        return form_groups(tasks, size, ev.group_signature, ev.step_bytes, ev.group_budget_bytes(),
                           rank=ev.group_rank)

    def final(self, genome: str, seed: int,
              options: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]]:
        """Retrain the best network; the model comes back as bytes (nodes share no disk)."""
        from gnas.backend.saving import keras_bytes
        from gnas.datasets.preprocessing import preprocessing_record

        model, metrics = self.evaluator.final(genome, seed, options)
        # behind its data's preparation: the saved model takes raw inputs
        return keras_bytes(model, preprocessing_record(self.evaluator.data)), metrics


def gpu_memory_mb(fraction: float) -> int:
    """Hard TensorFlow memory limit for a fraction of a GPU; 0 (memory growth) otherwise."""
    if not 0 < fraction < 1:
        return 0
    import ray

    ids = ray.get_gpu_ids()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
                              "-i", str(ids[0] if ids else 0)], capture_output=True, text=True,
                             timeout=20, check=True).stdout
        return int(float(out.split()[0]) * fraction * GPU_MEMORY_SHARE)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0
