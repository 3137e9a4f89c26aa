"""Edge-of-chaos initialisation (paper §III-A): Langton's lambda and the logistic map.

Pure functions with explicit random generators. The calibration of ``lambda_c``
(the measured edge of chaos) lives in :mod:`gnas.chaos.calibration`; this module turns
a ``lambda_c`` into an initial population.

Why one orbit per individual: at r = 3.5699456 (the accumulation point of the
period doubling) an orbit follows a cycle of period 2, 4, 8, ... ever more
closely, so thresholding one long orbit and cutting it into chromosomes gives
every individual the same near-periodic pattern, phase-shifted by the
chromosome length: at lambda = 0.5 and an even length all individuals are equal.
Each individual therefore reads its own orbit, with a seeded start and a seeded
phase, and a duplicate is redrawn. Sub-sampling an orbit does not help: any
stride keeps the period-2^k band order. For 8 individuals of 46 genes the mean
pairwise Hamming distance and the per-locus entropy then match Bernoulli(lambda)
bits of the same lambda (0.221 vs 0.208 of the length and 0.459 vs 0.418 bits at
lambda = 0.881) with all individuals distinct; only at lambda exactly 1/2, 1/4,
3/4, ... the threshold falls in a gap between the attractor's bands and no more
than 2^k distinct patterns exist.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from gnas.config import RunConfig
from gnas.errors import ConfigError
from gnas.genome.protocol import Space
from gnas.genome.space import Bits, gray_to_int, int_to_gray
from gnas.search.loop import InitialPopulation

ONSET_OF_CHAOS_R = 3.5699456  # Feigenbaum point: aperiodic but not random
BURN_IN = 100                 # iterations before an orbit is read
PHASES = 1024                 # range of the extra, seeded burn-in of each orbit
REDRAWS = 20                  # fresh orbits tried for an individual that repeats another
PAPER_LAMBDA_C = {"image": 0.881, "text": 0.786, "vector": 0.786}


def langton_lambda(n: int, d: int, q: int) -> float:
    """Langton's parameter (paper eq. 1-2): ``T = n**d``, ``lambda = (T - q) / T``.

    ``n`` and ``d`` as the paper names them (``T = n**d`` hyper-parameter states),
    ``q`` quiescent (latent) states, 0 <= q <= T. For a binary chromosome this is
    the probability that a gene is active.
    """
    if n < 1 or d < 0:
        raise ConfigError(f"langton_lambda: expected n >= 1 and d >= 0. Received: n={n}, d={d}.")
    total = n ** d
    if not 0 <= q <= total:
        raise ConfigError(f"langton_lambda: q={q} quiescent states is outside [0, T], T = n^d = {total}; "
                          f"give 0 <= q <= {total}.")
    return (total - q) / total


def check_lambda(value: float, name: str = "lambda_c") -> float:
    """``value`` as a float if it lies in [0, 1], else a one-line ConfigError."""
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


def coe_orbit(length: int, rng: np.random.Generator, r: float = ONSET_OF_CHAOS_R) -> np.ndarray:
    """One individual's orbit: a seeded start ``x0`` and a seeded phase (extra burn-in).

    At the onset of chaos the orbit hugs a cycle of period 2, 4, 8, ... (the
    period-doubling cascade), so two orbits that share a phase threshold to the
    same bits. A phase drawn from ``PHASES`` steps (a multiple of every period up
    to 1024) makes the phase of each individual its own.
    """
    phase = int(rng.integers(0, PHASES))
    return logistic_sequence(length, x0=float(rng.uniform(0.05, 0.95)), r=r, burn_in=BURN_IN + phase)


def coe_bits(n: int, length: int, lambda_c: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` x ``length`` bits at the edge of chaos, a fraction ``lambda_c`` of them 1.

    Every individual reads its genes off its own logistic-map orbit at the onset of
    chaos (:func:`coe_orbit`), and all orbits are thresholded at their pooled
    ``1 - lambda_c`` quantile: within a chromosome the pattern is aperiodic but not
    random (long near-periodic runs), across individuals it differs by the orbit's
    start and phase. An individual that repeats another's bits is drawn again from
    a fresh orbit (up to ``REDRAWS`` times), since a duplicate adds nothing to the
    population and would only be read from the evaluation cache.

    Args:
        n: Individuals.
        length: Genes per individual.
        lambda_c: Fraction of genes that are 1, in [0, 1].
        rng: The run's generator (the bits are deterministic per seed).
    """
    check_lambda(lambda_c)
    if n < 0 or length < 0:
        raise ConfigError(f"coe_bits: expected n >= 0 and length >= 0. Received: n={n}, length={length}.")
    if lambda_c <= 0.0 or lambda_c >= 1.0 or n == 0 or length == 0:
        return np.full((n, length), int(lambda_c >= 1.0), dtype=np.int8)
    values = np.stack([coe_orbit(length, rng) for _ in range(n)])
    threshold = float(np.quantile(values, 1.0 - lambda_c))
    bits = (values > threshold).astype(np.int8)
    seen: set[bytes] = set()
    for i in range(n):
        for _ in range(REDRAWS):
            if bits[i].tobytes() not in seen:
                break
            bits[i] = (coe_orbit(length, rng) > threshold).astype(np.int8)
        seen.add(bits[i].tobytes())
    return bits


def edge_of_chaos_genomes(space: Space, n: int, lambda_c: float,
                          rng: np.random.Generator) -> list[Bits]:
    """Initial genomes from logistic-map orbits at the onset of chaos.

    The ``l`` connection genes are thresholded at ``lambda_c``: a fraction
    ``lambda_c`` of them is active. Width and hyper-parameter genes come from the
    same kind of orbit thresholded at 1/2: a Gray-coded value has no active or
    quiescent state, and tying it to ``lambda_c`` would push every learning rate
    and width to one end of its range (a measured ``lambda_c`` of 0.15 gives
    learning rates near 1e-4).
    """
    connections = coe_bits(n, space.l, lambda_c, rng)
    values = coe_bits(n, space.length - space.l, 0.5, rng)
    return [space.repair(tuple(int(b) for b in np.concatenate([c, v])))
            for c, v in zip(connections, values)]


def initial_population(cfg: RunConfig, space: Space, rng: np.random.Generator,
                       lambda_c: Callable[[], tuple[float, str]]) -> InitialPopulation:
    """Generation 0: at the edge of chaos (``init = "coe"``) or uniform ("complete chaos").

    ``lambda_c`` is asked only for a CoE draw (it may run the calibration). With
    growth on, growth starts from the draw: its stages stay as drawn (reducing
    every genome to stage 0 left about half an expressed connection gene per
    genome, so the edge-of-chaos draw never reached the networks), and stage 0
    takes a width from the upper half of the range (see :func:`wide_first_stage`).
    """
    ev = cfg.evolution
    if ev.init == "coe":
        value, source = lambda_c()
        genomes = edge_of_chaos_genomes(space, ev.population, value, rng)
    else:  # 'complete chaos': uniform bits, so each gene is active with probability 1/2
        value, source = 0.5, "uniform"
        genomes = [space.random_bits(rng) for _ in range(ev.population)]
    if ev.growth:
        genomes = [wide_first_stage(space, b) for b in genomes]
    return InitialPopulation(genomes, ev.init, value, source)


def wide_first_stage(space: Space, bits: Bits) -> Bits:
    """Stage 0's width code moved into the upper half of its range (then repaired).

    A base model with the narrowest stage 0 (a few hundred parameters on
    Fashion-MNIST) cannot learn the task in a few epochs, and a short budget never
    grows out of it. Adding half the range keeps the draw uniform over the upper half.
    """
    out = list(bits)
    where, n = space.width_slices[0], space.cfg.width_bits
    code, half = gray_to_int(out[where]), 2 ** (n - 1)
    if code < half:
        out[where] = int_to_gray(code + half, n)
    return space.repair(tuple(out))
