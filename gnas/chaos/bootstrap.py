"""How sure a measured ``lambda_c`` is: a bootstrap over chromosomes and input batches.

One sweep point is a table of Lyapunov exponents, one row per sampled chromosome
(with its own weight draw) and one column per batch of real inputs. Both are
random draws, and a single mean curve hides how much its zero crossing would
move with other draws: on digits the exponent hovers near 0 over a wide range of
``lambda`` and the crossing jumps between sweep points from seed to seed.

A replicate resamples the rows with replacement and the columns with
replacement (a two-way bootstrap, so both sources of noise enter), averages each
table into one curve and finds its crossing with the same rule as the
measurement. The calibration draws row ``k`` of every sweep point from the same
random numbers (common random numbers), so when the tables share a shape one
draw of rows and columns serves the whole sweep and keeps that pairing; tables
of different shapes are resampled point by point. The interval is the 2.5 and
97.5 percentiles of the replicates' crossings. A crossing is *robust* when
nearly every replicate finds one (:data:`MIN_SHARE`) and the interval is at most
:data:`MAX_WIDTH` wide; otherwise the run falls back to the paper's preset and
says which of the two failed.

Pure NumPy: the tables come from :mod:`gnas.chaos.calibration`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

REPLICATES = 400   # bootstrap curves; the percentiles move by < 0.005 beyond this
MAX_WIDTH = 0.1    # widest 95 % interval that still counts as a robust crossing
MIN_SHARE = 0.95   # fraction of replicates that must cross zero at all
LEVEL = 0.95


@dataclass(frozen=True)
class CrossingInterval:
    """The bootstrap's verdict on a crossing: interval, share of crossings, robustness."""

    lo: float | None
    hi: float | None
    share: float          # fraction of replicates whose curve crosses zero
    replicates: int
    robust: bool
    reason: str

    @property
    def width(self) -> float | None:
        return None if self.lo is None or self.hi is None else self.hi - self.lo


def replicate_curves(tables: Sequence[np.ndarray], replicates: int,
                     rng: np.random.Generator) -> np.ndarray:
    """``replicates`` x ``len(tables)`` mean exponents, rows and columns resampled per point.

    Args:
        tables: One 2-D array per lambda: chromosomes x input batches (row k of
            every table from the same random numbers when the shapes agree).
        replicates: Bootstrap curves to draw.
        rng: Seeds the resampling.
    """
    tables = [np.atleast_2d(np.asarray(t, dtype=float)) for t in tables]
    out = np.empty((replicates, len(tables)))
    if len({t.shape for t in tables}) == 1:  # paired sweep: one draw of rows and columns for all
        stack = np.stack(tables)             # points x rows x cols
        rows, cols = stack.shape[1:]
        for b in range(replicates):
            r, c = rng.integers(0, rows, rows), rng.integers(0, cols, cols)
            out[b] = stack[:, r][:, :, c].mean(axis=(1, 2))
        return out
    for j, table in enumerate(tables):
        rows, cols = table.shape
        for b in range(replicates):
            r, c = rng.integers(0, rows, rows), rng.integers(0, cols, cols)
            out[b, j] = table[np.ix_(r, c)].mean()
    return out


def crossing_interval(lambdas: Sequence[float], tables: Sequence[np.ndarray],
                      crossing: Callable[[Sequence[float], Sequence[float]], float | None], *,
                      replicates: int = REPLICATES, seed: int = 0, max_width: float = MAX_WIDTH,
                      min_share: float = MIN_SHARE) -> CrossingInterval:
    """Bootstrap the crossing of the sweep ``tables`` with the rule ``crossing``.

    ``crossing(lambdas, curve)`` returns the crossing of one curve or None; the
    calibration passes its own rule so that the interval is about the very number
    it reports.
    """
    curves = replicate_curves(tables, replicates, np.random.default_rng(seed))
    found = [crossing(lambdas, curve) for curve in curves]
    values = np.array([v for v in found if v is not None], dtype=float)
    share = len(values) / replicates
    if len(values) == 0:
        return CrossingInterval(None, None, 0.0, replicates, False,
                                "no bootstrap replicate of the sweep crosses zero")
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    lo, hi = (float(v) for v in np.percentile(values, [tail, 100.0 - tail]))
    if share < min_share:
        reason = (f"only {share:.0%} of {replicates} bootstrap replicates cross zero "
                  f"(at least {min_share:.0%} needed)")
        return CrossingInterval(round(lo, 6), round(hi, 6), share, replicates, False, reason)
    if hi - lo > max_width:
        reason = (f"the 95 % interval [{lo:.3f}, {hi:.3f}] is {hi - lo:.3f} wide "
                  f"(at most {max_width} for a robust crossing)")
        return CrossingInterval(round(lo, 6), round(hi, 6), share, replicates, False, reason)
    return CrossingInterval(round(lo, 6), round(hi, 6), share, replicates, True,
                            f"{share:.0%} of {replicates} bootstrap replicates cross zero "
                            f"within [{lo:.3f}, {hi:.3f}]")
