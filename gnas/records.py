"""Plain records that cross process boundaries, and the fixed vocabularies of a run.

Only these (strings and numbers) travel between the driver and workers; DEAP
individuals, Keras models and closures never do. The vocabularies are string
enums: they compare equal to, and serialise as, their plain values, so JSON,
SQLite and old readers see the same strings as before.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Vocabulary(str, Enum):
    """A string enum whose ``str()`` and ``format()`` are its value on every Python."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(Vocabulary):
    """How an evaluation ended."""

    OK = "ok"
    FAILED = "failed"


class Kind(Vocabulary):
    """Why a network was trained: the search itself, a competition champion, a pruning attempt."""

    SEARCH = "search"
    CHAMPION = "champion"
    PRUNE = "prune"
    RESEED = "reseed"  # a final candidate trained again with another seed (the winner's curse)


class Phase(Vocabulary):
    """Algorithm 1's two phases: the search grows networks, then prunes them."""

    GROW = "grow"
    PRUNE = "prune"


class Operator(Vocabulary):
    """What put an individual into the population (its lineage label for the Markov chain)."""

    ELITE = "elite"
    COPY = "copy"
    CROSSOVER = "crossover"
    MUTATION = "mutation"
    CROSSOVER_MUTATION = "crossover+mutation"
    CHAMPION = "champion"
    PRUNED = "pruned"
    RANDOM = "random"


#: Operators that breed a child from the previous generation (moves of the Markov chain).
VARIATION_OPERATORS = frozenset({Operator.COPY, Operator.CROSSOVER, Operator.MUTATION,
                                 Operator.CROSSOVER_MUTATION})

WORST_ERROR = 1.0  # the error recorded for a failed evaluation (worst fitness follows)


@dataclass(frozen=True)
class EvalTask:
    """One network to train and score."""

    key: str                     # canonical architecture key (the cache key)
    genome: str                  # the bits as a string of 0/1
    seed: int                    # derived from the run seed and the key
    kind: Kind = Kind.SEARCH
    generation: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # e.g. pruning masks, fine-tune cycles


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation produced; failures carry their reason in ``message``."""

    key: str
    genome: str
    status: Status
    val_error: float = WORST_ERROR
    val_loss: float = float("nan")
    params: int = 0
    flops: int = 0
    seconds: float = 0.0
    message: str = ""
    worker: str = ""
    node: str = ""
    kind: Kind = Kind.SEARCH
    generation: int = 0
    attempts: int = 1
    pruned_fraction: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def derive_seed(run_seed: int, key: str) -> int:
    """Per-genome seed: one genome always trains the same way within a run."""
    return (zlib.crc32(f"{run_seed}:{key}".encode()) ^ (run_seed * 2654435761)) % (2**31 - 1)


def failed(task: EvalTask, message: str, **extra: Any) -> EvalResult:
    """A failed result for ``task`` (worst error), keeping the reason."""
    return EvalResult(key=task.key, genome=task.genome, status=Status.FAILED, message=message[-2000:],
                      kind=task.kind, generation=task.generation, **extra)
