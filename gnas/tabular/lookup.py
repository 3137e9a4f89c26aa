"""Evaluation by lookup: a NAS-Bench-201 query, charged the seconds the paper charges it.

The protocol of NAS-Bench-201's own search scripts (Dong & Yang, ICLR 2020):
a query returns the validation accuracy of one training seed of the cell,
drawn at random, and costs 12 epochs of training plus one validation pass on
the simulated clock. The table's 200-epoch training time is spread evenly over
its epochs, so a query costs ``train_time * (12 + VALIDATION_EPOCHS) / 200``.

The seed is drawn from a generator seeded with the task's seed, itself derived
from the run's seed and the cell's key (:func:`gnas.records.derive_seed`): a
query is reproducible, and a resumed run draws what an uninterrupted one drew.
No TensorFlow is imported on this path.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gnas.errors import FatalError
from gnas.genome.nb201 import Nb201Space
from gnas.genome.space import str_to_bits
from gnas.records import EvalResult, EvalTask, Status
from gnas.tabular.table import Table, load_table

SEARCH_EPOCHS = 12
TABLE_EPOCHS = 200
#: One validation pass, in epochs of training time (the table keeps no validation time).
VALIDATION_EPOCHS = 0.39


def query_seconds(train_time: float) -> float:
    """Simulated seconds of one query of a cell whose 200 epochs took ``train_time`` s."""
    return float(train_time) * (SEARCH_EPOCHS + VALIDATION_EPOCHS) / TABLE_EPOCHS


class TableEvaluator:
    """Answers an evaluation task from a NAS-Bench-201 table (the evaluator seam)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.space = Nb201Space()

    def evaluate(self, task: EvalTask) -> EvalResult:
        key = self.space.key(str_to_bits(task.genome))  # a variant's key is a digest: the cell's
        i = int(key, 5)
        seed = int(np.random.default_rng(task.seed).integers(self.table.seeds[i]))
        acc = float(self.table.val_acc[i, seed])
        return EvalResult(key=task.key, genome=task.genome, status=Status.OK,
                          val_error=1.0 - acc / 100.0,
                          seconds=query_seconds(self.table.train_time[i]),
                          kind=task.kind, generation=task.generation,
                          metrics={"val_acc": acc, "table_seed": seed,
                                   "model_size_m": float(self.table.model_size[i])})

    def final(self, genome: str, seed: int, options: Mapping[str, Any] | None = None,
              report: Any = None) -> Any:
        raise FatalError("a table space has no final training: its pick is the best query observed.")


def table_evaluator(cfg, dataset, worker: str = "") -> TableEvaluator:
    """The evaluator factory of the nb201 space: the table of ``data.dataset``."""
    return TableEvaluator(load_table(cfg.data.dataset))
