"""The test split of a source that brings none: a fixed share held out once.

scikit-learn's digits, a CSV, an image folder without ``train/``/``test/`` and
in-memory arrays given to :func:`gnas.evolve` without ``test_data`` all hold
one pool of samples. A fixed seed draws the same test samples on every run of
the same data, so test scores compare across runs and a resume sees the split
its run began with; classes are held out in proportion (stratified).
"""
from __future__ import annotations

import numpy as np

from gnas.errors import DataError

#: Share of the samples held out for test.
TEST_FRACTION = 0.2
#: Seed of the draw of one's own data (digits keeps its own, 0, as it always had).
TEST_SPLIT_SEED = 20240917


def held_out(y: np.ndarray, fraction: float, seed: int, *, stratify: bool = True) -> np.ndarray:
    """Sorted indices of ``fraction`` of every class (of all samples without ``stratify``)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    chosen = [rng.permutation(g)[: int(round(fraction * len(g)))] for g in groups]
    return np.sort(np.concatenate(chosen))


def split_off_test(
    y: np.ndarray, source: str, *, stratify: bool, fraction: float = TEST_FRACTION, seed: int = TEST_SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices kept for training and held out for test, or a DataError when too few samples."""
    held = held_out(y, fraction, seed, stratify=stratify)
    if len(held) == 0 or len(held) >= len(y) - 1:
        raise DataError(f"{source}: {len(y)} samples are too few to hold out a test split; "
                        "give more samples or a test split of your own.")
    keep = np.setdiff1d(np.arange(len(y)), held)
    return keep, held
