"""Population statistics logged every generation: diversity, entropy and lambda."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def population_lambda(bits: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Lambda of a binary population: the fraction of active (1) genes.

    For a binary chromosome Langton's ``lambda`` (eq. 2 with ``n = 2`` states per
    gene, the inactive one quiescent) is the probability that a gene is 1; the
    engine logs it for the connection genes of every generation.
    """
    arr = np.asarray(bits, dtype=float)
    return float(arr.mean()) if arr.size else 0.0


def per_locus_entropy(bits: np.ndarray) -> float:
    """Mean Shannon entropy (bits) of each locus over a population."""
    p = np.asarray(bits, dtype=float).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.nan_to_num(h).mean())


def mean_hamming(bits: np.ndarray) -> float:
    """Mean pairwise Hamming distance of a population (its diversity)."""
    arr = np.asarray(bits, dtype=np.int64)
    n = len(arr)
    if n < 2:
        return 0.0
    ones = arr.sum(axis=0)
    return float((ones * (n - ones)).sum() / (n * (n - 1) / 2))
