"""What a NAS-Bench-201 run reports of its pick: the paper's figures and the table's view.

The pick is the best *observed* query (the search's signal, one seed's
accuracy); the paper reports it as its mean over the table's seeds. Beside
them: the pick's rank among the 15,625 cells by mean accuracy, the same cell on
the other two data sets, and the run's queries and simulated seconds.
"""
from __future__ import annotations

from typing import Any, Iterable

from gnas.genome.nb201 import CELLS, arch_string
from gnas.records import EvalResult, Kind
from gnas.tabular.table import TABLES, load_table


def pick_details(dataset: str, key: str, observed_acc: float,
                 results: Iterable[EvalResult]) -> dict[str, Any]:
    """The ``nb201`` section of a run's summary for the pick ``key`` on ``dataset``."""
    table = load_table(dataset)
    row = table.row(key)
    queries = [r for r in results if r.kind != Kind.RESEED]
    return {"dataset": dataset, "key": key, "arch_str": arch_string(key),
            "queries": len(queries), "simulated_seconds": float(sum(r.seconds for r in queries)),
            "observed_acc": float(observed_acc), "mean_acc": float(table.mean_acc[row]),
            "rank": table.rank(key), "cells": CELLS, "best_mean_acc": float(table.mean_acc.max()),
            "model_size_m": float(table.model_size[row]),
            "other_datasets": {name: float(load_table(name).mean_acc[row])
                               for name in TABLES if name != dataset}}


def pick_lines(nb: dict[str, Any]) -> list[str]:
    """The summary's lines of the ``nb201`` section."""
    others = ", ".join(f"{name} {acc:.2f}" for name, acc in nb["other_datasets"].items())
    return [f"nb201 pick:        {nb['arch_str']}  (key {nb['key']}, {nb['dataset']})",
            f"pick val acc:      {nb['observed_acc']:.2f} observed, {nb['mean_acc']:.2f} mean "
            f"over seeds; rank {nb['rank']} of {nb['cells']} (best {nb['best_mean_acc']:.2f})",
            f"same cell:         {others} (mean val acc)",
            f"queries:           {nb['queries']}, {nb['simulated_seconds']:.0f} simulated seconds"]
