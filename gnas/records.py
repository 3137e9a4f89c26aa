"""Plain records that cross process boundaries, and the fixed vocabularies of a run.

Only these (strings and numbers) travel between the driver and workers; DEAP
individuals, Keras models and closures never do. The vocabularies are string
enums: they compare equal to, and serialise as, their plain values, so JSON,
SQLite and old readers see the same strings as before.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Mapping


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

SEARCH_EPOCHS = "search_epochs"  # a final training's option: the epochs its search training had
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
    # Fidelity (successive halving): train to ``epochs`` (0 = train.epochs); with
    # ``resume_from`` > 0 continue the training saved in ``checkpoint_from`` after that many
    # epochs; save the training state to ``checkpoint`` when it is not empty.
    epochs: int = 0
    rung: int = 0
    resume_from: int = 0
    checkpoint_from: str = ""
    checkpoint: str = ""
    # Weight inheritance: trained weights by layer name that matching layers start from, and
    # whether the trained weights come back with the result (the network may become a parent).
    inherit: Mapping[str, list[Any]] = field(default_factory=dict, compare=False, repr=False)
    keep_weights: bool = False

    def epochs_to_train(self, default_epochs: int) -> int:
        """The epochs this task trains (and adds to its network): to its rung's epochs from
        where it is, or ``default_epochs`` (``train.epochs``) for a task no schedule placed."""
        return self.epochs - self.resume_from if self.epochs else default_epochs


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
    # The trained weights by layer name, when the task kept them (never stored in a row).
    weights: Mapping[str, list[Any]] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, weights=None))
        out.pop("weights")
        return out


@dataclass(frozen=True)
class StoredEvaluation:
    """One row of ``evaluations.db`` as a step reads it: the result, its row id and its fitness.

    Steps and strategies see evaluations through this record, never through the
    store's columns, so a column can be renamed or added without touching them.
    ``id`` orders rows as they were written (the latest of a network's rows wins
    where one must); ``fitness`` is what the run's fitness model gave it,
    ``None`` for a failed row.
    """

    id: int
    fitness: float | None
    result: EvalResult

    @property
    def key(self) -> str:
        return self.result.key

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "StoredEvaluation":
        """The record of one ``evaluations`` row (column name -> value); old rows get the defaults."""
        missing = {"id", "genome_key", "genome", "status", "kind", "generation"} - set(row)
        if missing:
            raise ValueError(f"an evaluation row lacks {', '.join(sorted(missing))}")
        fitness = row.get("fitness")
        return cls(id=int(row["id"]), fitness=None if fitness is None else float(fitness),
                   result=EvalResult(
                       key=row["genome_key"], genome=row["genome"], status=Status(row["status"]),
                       val_error=_or(row.get("val_error"), WORST_ERROR),
                       val_loss=_or(row.get("val_loss"), float("nan")),
                       params=row.get("params") or 0, flops=row.get("flops") or 0,
                       seconds=row.get("seconds") or 0.0, message=row.get("error") or "",
                       worker=row.get("worker") or "", node=row.get("node") or "",
                       kind=Kind(row["kind"]), generation=int(row["generation"]),
                       attempts=row.get("attempts") or 1,
                       pruned_fraction=row.get("pruned_fraction") or 0.0,
                       metrics=_metrics(row.get("metrics"))))


def _or(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _metrics(value: Any) -> dict[str, Any]:
    """The metrics column: JSON text in the store, a dict already in memory."""
    if isinstance(value, Mapping):
        return dict(value)
    return json.loads(value) if value else {}


def derive_seed(run_seed: int, key: str) -> int:
    """Per-genome seed: one genome always trains the same way within a run."""
    return (zlib.crc32(f"{run_seed}:{key}".encode()) ^ (run_seed * 2654435761)) % (2**31 - 1)


def failed(task: EvalTask, message: str, **extra: Any) -> EvalResult:
    """A failed result for ``task`` (worst error), keeping the reason."""
    metrics = {**extra.pop("metrics", {}), **fidelity_metrics(task)}
    return EvalResult(key=task.key, genome=task.genome, status=Status.FAILED, message=message[-2000:],
                      kind=task.kind, generation=task.generation, metrics=metrics, **extra)


def fidelity_metrics(task: EvalTask) -> dict[str, int]:
    """What a row says of its fidelity: the epochs its network has trained and its rung.

    Only tasks of a fidelity schedule name their epochs; a full-fidelity row stays as it was.
    """
    return {"epochs": task.epochs, "rung": task.rung} if task.epochs else {}


@dataclass(frozen=True)
class NetworkSize:
    """Parameters and FLOPs of an evaluated network, before and after pruning.

    ``params`` counts non-zero parameters, ``params_total`` what the network
    holds, ``params_stored`` what a file of it holds (they differ only under
    irregular or N:M masks, whose zeros are stored densely). The ``*_unpruned``
    counts are the network's base before pruning: the network itself when it
    was not pruned.
    """

    params: int
    params_total: int
    params_stored: int
    params_nonzero: int
    params_unpruned: int
    flops: int
    flops_unpruned: int
    gene_fraction: float = 0.0

    @classmethod
    def from_row(cls, row: "EvalResult | Mapping[str, Any] | None", params: int, flops: int) -> "NetworkSize":
        """The sizes an evaluation row records; ``params`` and ``flops`` where it records none.

        ``row`` is an :class:`EvalResult` or its :meth:`~EvalResult.to_dict`. A row
        of a network that was not pruned, a failed row or none at all has no
        pruning counts: each then falls back to the network's own. This is the one
        place those fallbacks are written (the final summary, the report, the export).
        """
        if isinstance(row, EvalResult):
            row = row.to_dict()
        row = row or {}
        m = row.get("metrics") or {}
        ok = row.get("status") == Status.OK
        params = int(row.get("params") or params) if ok else params
        flops = int(row.get("flops") or flops) if ok else flops
        total = m.get("params_total", params)
        return cls(params=params, params_total=total, params_stored=m.get("params_stored", total),
                   params_nonzero=m.get("params_nonzero", total),
                   params_unpruned=m.get("params_unpruned", total), flops=flops,
                   flops_unpruned=m.get("flops_unpruned", flops),
                   gene_fraction=m.get("gene_fraction", 0.0))

    @property
    def pruned_fraction(self) -> float:
        """``1 - params / params_unpruned``: the share of the base's parameters pruning removed."""
        return 1.0 - self.params / self.params_unpruned if self.params_unpruned else 0.0

    def before_pruning(self) -> dict[str, int]:
        """What the network was before pruning, as the final summary records it."""
        return {"params_stored": self.params_stored, "params_unpruned": self.params_unpruned,
                "flops_unpruned": self.flops_unpruned}
