"""Edge-of-chaos initialisation (paper §III-A): Langton's lambda and the logistic map.

Pure functions with explicit random generators. The calibration of ``lambda_c``
(the measured edge of chaos) lives in :mod:`gnas.calibration`; this module turns
a ``lambda_c`` into an initial population.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gnas.errors import ConfigError

ONSET_OF_CHAOS_R = 3.5699456  # Feigenbaum point: aperiodic but not random
PAPER_LAMBDA_C = {"image": 0.881, "text": 0.786, "vector": 0.786}


def langton_lambda(n: int, d: int, q: int) -> float:
    """Langton's parameter (paper eq. 1-2): ``T = n**d``, ``lambda = (T - q) / T``.

    ``n`` states per gene, ``d`` genes, ``q`` quiescent states (0 <= q <= T).
    """
    if n < 1 or d < 0:
        raise ConfigError(f"langton_lambda: expected n >= 1 and d >= 0. Received: n={n}, d={d}.")
    total = n ** d
    if not 0 <= q <= total:
        raise ConfigError(f"langton_lambda: q={q} must lie in [0, T={total}] (T = n^d).")
    return (total - q) / total


def population_lambda(bits: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Lambda of a binary population: the fraction of active (1) genes."""
    arr = np.asarray(bits, dtype=float)
    return float(arr.mean()) if arr.size else 0.0


def check_lambda(value: float, name: str = "lambda_c") -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value} is out of range: allowed [0, 1].")
    return float(value)


def logistic_sequence(count: int, x0: float, r: float = ONSET_OF_CHAOS_R, burn_in: int = 100) -> np.ndarray:
    """``count`` iterates of ``x <- r x (1 - x)`` after a burn-in, from ``x0`` in (0, 1)."""
    x = float(x0)
    for _ in range(burn_in):
        x = r * x * (1.0 - x)
    out = np.empty(count)
    for k in range(count):
        x = r * x * (1.0 - x)
        out[k] = x
    return out


def coe_bits(n: int, length: int, lambda_c: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` x ``length`` bits from one logistic-map orbit at the onset of chaos.

    The orbit is thresholded at its own (1 - lambda_c) quantile, so a fraction
    ``lambda_c`` of all genes is 1 while the pattern stays deterministic and aperiodic.
    """
    check_lambda(lambda_c)
    seq = logistic_sequence(n * length, x0=float(rng.uniform(0.05, 0.95)))
    if lambda_c <= 0.0:
        return np.zeros((n, length), dtype=np.int8)
    threshold = np.quantile(seq, 1.0 - lambda_c)
    bits = (seq > threshold) if lambda_c < 1.0 else np.ones_like(seq, dtype=bool)
    return bits.reshape(n, length).astype(np.int8)


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
