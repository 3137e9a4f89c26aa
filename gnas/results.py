"""Plain records that cross process boundaries: evaluation tasks and results.

Only these (strings and numbers) travel between the driver and workers; DEAP
individuals, Keras models and closures never do.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

WORST_ERROR = 1.0  # the error recorded for a failed evaluation (worst fitness follows)


@dataclass(frozen=True)
class EvalTask:
    """One network to train and score."""

    key: str                     # canonical architecture key (the cache key)
    genome: str                  # the bits as a string of 0/1
    seed: int                    # derived from the run seed and the key
    kind: str = "search"         # "search", "champion", "prune"
    generation: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # e.g. pruning masks, fine-tune cycles


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation produced; failures carry their reason in ``message``."""

    key: str
    genome: str
    status: str                  # "ok" or "failed"
    val_error: float = WORST_ERROR
    val_loss: float = float("nan")
    params: int = 0
    flops: int = 0
    seconds: float = 0.0
    message: str = ""
    worker: str = ""
    node: str = ""
    kind: str = "search"
    generation: int = 0
    attempts: int = 1
    pruned_fraction: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def derive_seed(run_seed: int, key: str) -> int:
    """Per-genome seed: one genome always trains the same way within a run."""
    return (zlib.crc32(f"{run_seed}:{key}".encode()) ^ (run_seed * 2654435761)) % (2**31 - 1)


def failed(task: EvalTask, message: str, **extra: Any) -> EvalResult:
    """A failed result for ``task`` (worst error), keeping the reason."""
    return EvalResult(key=task.key, genome=task.genome, status="failed", message=message[-2000:],
                      kind=task.kind, generation=task.generation, **extra)
