"""Markov-chain analysis of the genetic search (paper §III-B-2, eq. 4-6).

A chromosome's ``l`` connection genes define its *state* ``i`` = number of ones
among them, so every transition matrix is ``(l+1) x (l+1)``. Per generation we
keep the **empirical** matrix (parent-state -> child-state moves made by the
operators) next to the **theoretical** Wright-Fisher matrix with selection,
plus what the theory predicts from it (fixation, absorption times,
quasi-stationary distribution) and the per-gene survival probability that the
pruner ranks genes by. Everything is NumPy only and side-effect free except
the storage helpers, which write one ``.npz`` per generation atomically
(figures of these records live in :mod:`gnas.report.analysis`).
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from gnas.errors import InvalidGenomeError, RunDirError
from gnas.runs.atomic import sync

FITNESS_FLOOR = 1e-12
"""Smallest positive fitness: keeps every ratio in eq. 4 finite and defined."""

CONVERGENCE_TOL = 1e-3
"""Default relative improvement below which a generation counts as stagnant."""

CONVERGENCE_PATIENCE = 3
"""Default number of consecutive stagnant generations that means converged."""

CONVERGENCE_DEFINITION = (
    "Observed generations to convergence (paper Table II): with b[g] the "
    "best-so-far (running minimum) fitness F after generation g (0-based; "
    "non-finite values count as +inf), generation k improves when "
    "b[k-1] - b[k] >= tol * max(|b[k-1]|, 1e-12); the search converged at the "
    "last generation g that improved (0 if none did), provided at least "
    "`patience` further generations were recorded after it without improving; "
    "otherwise None (not converged yet). "
    f"Defaults: tol = {CONVERGENCE_TOL:g}, patience = {CONVERGENCE_PATIENCE}."
)
"""The single definition of "convergence" used by gnas (reports, summaries, notebooks).

The running minimum is used because with or without elitism the search has
found the best-so-far network; a worse generation is not progress and a
recovery to an old level is not an improvement. The *last* improvement, not
the first plateau, marks convergence: a search that stalls for a few
generations and then finds a better network had not converged. ``g`` is also
the number of generations of evolution that were needed, since generation 0 is
the initial population.
"""

RECORD_KEYS = (
    "generation", "l", "counts", "empirical", "observed", "theoretical", "f1", "f0",
    "fixation", "absorption_times", "quasi_stationary", "gene_survival", "parent_bits",
    "child_bits", "population_bits", "fitness", "state_entropy",
    "predicted_generations_to_absorption", "operators", "excluded",
)


# ----------------------------------------------------------------- fitness ---
def positive_fitness(fitness: np.ndarray | Sequence[float]) -> np.ndarray:
    """Map minimised gnas fitness ``F`` to the positive, larger-is-better ``exp(-F)``.

    Eq. 4 needs positive fitness. ``exp(-F)`` is monotone (ranking kept),
    positive for any real ``F`` (``F`` is negative when the pruning reward
    ``mu`` dominates), depends only on differences of ``F`` (adding a constant
    to every ``F`` leaves eq. 4 unchanged) and sends failures (huge, inf or
    NaN ``F``) to ~0 so they get no selection weight. ``F`` is clipped at -50
    so sums cannot overflow; the result is clipped to >= ``FITNESS_FLOOR``.
    """
    f = np.asarray(fitness, dtype=np.float64)
    f = np.where(np.isnan(f), np.inf, f)
    return np.maximum(np.exp(-np.maximum(f, -50.0)), FITNESS_FLOOR)


def _as_bits(bits: np.ndarray, name: str) -> np.ndarray:
    """Return ``bits`` as a 2-D int64 array of 0/1, or raise InvalidGenomeError."""
    a = np.asarray(bits)
    if a.ndim != 2 or a.shape[1] < 1:
        raise InvalidGenomeError(f"{name} must be a 2-D (n, l) bit array with l >= 1, got shape {a.shape}")
    if a.size and not np.isin(a, (0, 1)).all():
        raise InvalidGenomeError(f"{name} holds values other than 0 and 1")
    return a.astype(np.int64)


def states_of(bits: np.ndarray) -> np.ndarray:
    """State of each row of an ``(n, l)`` bit array: its number of ones."""
    return _as_bits(bits, "bits").sum(axis=1)


# --------------------------------------------------------------- empirical ---
def empirical_counts(parent_bits: np.ndarray, child_bits: np.ndarray) -> np.ndarray:
    """Count parent-state -> child-state moves; row ``k`` pairs child ``k`` with its parent."""
    p, c = _as_bits(parent_bits, "parent_bits"), _as_bits(child_bits, "child_bits")
    if p.shape != c.shape:
        raise InvalidGenomeError(f"parent_bits {p.shape} and child_bits {c.shape} differ in shape")
    l = p.shape[1]
    counts = np.zeros((l + 1, l + 1), dtype=np.int64)
    np.add.at(counts, (p.sum(axis=1), c.sum(axis=1)), 1)
    return counts


def normalise_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalise counts; rows without observations stay NaN and are flagged False.

    Returns:
        ``(empirical, observed)``. Unobserved rows are never filled in, so no
        plot or statistic can mistake an absence of data for a transition.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1)
    observed = totals > 0
    empirical = np.full(counts.shape, np.nan)
    empirical[observed] = counts[observed] / totals[observed, None]
    return empirical, observed


# ------------------------------------------------------------- theoretical ---
def _per_gene_fitness(population_bits: np.ndarray, fitness: np.ndarray) -> tuple[np.ndarray, ...]:
    """Carrier counts ``n1, n0`` and mean positive fitness ``f1_g, f0_g`` per gene (NaN if none)."""
    bits = _as_bits(population_bits, "population_bits")
    w = positive_fitness(fitness)
    if w.shape != (bits.shape[0],) or bits.shape[0] == 0:
        raise InvalidGenomeError(
            f"need one fitness per individual of a non-empty population, got {w.shape} for {bits.shape}")
    n1 = bits.sum(axis=0).astype(np.float64)
    n0 = bits.shape[0] - n1
    s1, s0 = w @ bits, w @ (1 - bits)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n1, n0, s1 / n1, s0 / n0


def allele_fitness(population_bits: np.ndarray, fitness: np.ndarray) -> tuple[float, float]:
    """Population-level ``(f1, f0)`` of eq. 4-5.

    ``f1`` is the mean positive fitness of the chromosomes carrying a 1 at a
    gene, averaged over the genes that have carriers; ``f0`` likewise for 0.
    Averaging per-gene means (rather than pooling) keeps each connection's
    evidence equally weighted. If no gene has a carrier of one allele, there is
    no evidence of selection and that value falls back to the other (drift).
    """
    _, _, f1g, f0g = _per_gene_fitness(population_bits, fitness)
    f1 = float(np.mean(f1g[np.isfinite(f1g)])) if np.isfinite(f1g).any() else math.nan
    f0 = float(np.mean(f0g[np.isfinite(f0g)])) if np.isfinite(f0g).any() else math.nan
    return (f0 if math.isnan(f1) else f1), (f1 if math.isnan(f0) else f0)


def gene_survival(population_bits: np.ndarray, fitness: np.ndarray) -> np.ndarray:
    """Per-gene survival ``p1_g = n1*f1_g / (n1*f1_g + n0*f0_g)`` (used by the pruner).

    This is the share of the population's positive fitness held by carriers
    of gene ``g``. Edge cases: no carriers -> 0 (the connection cannot
    survive), no non-carriers -> 1 (it is fixed).
    """
    n1, n0, f1g, f0g = _per_gene_fitness(population_bits, fitness)
    out = np.empty_like(n1)
    out[n1 == 0], out[n0 == 0] = 0.0, 1.0
    mixed = (n1 > 0) & (n0 > 0)
    a, b = n1[mixed] * f1g[mixed], n0[mixed] * f0g[mixed]
    out[mixed] = a / (a + b)
    return out


def survival_probability(l: int, f1: float, f0: float) -> np.ndarray:
    """Eq. 4 for every state ``i``: ``p1(i) = i*f1 / (i*f1 + (l-i)*f0)``; p1(0)=0, p1(l)=1."""
    if l < 1 or not (f1 > 0 and f0 > 0):
        raise ValueError(f"need l >= 1 and positive f1, f0; got l={l}, f1={f1}, f0={f0}")
    i = np.arange(l + 1, dtype=np.float64)
    p1 = i * f1 / (i * f1 + (l - i) * f0)
    p1[0], p1[l] = 0.0, 1.0
    return p1


def theoretical_matrix(l: int, f1: float, f0: float) -> np.ndarray:
    """Wright-Fisher matrix with selection (eq. 6, exponent ``l-j``, not the printed ``1-j``).

    ``P[i, j] = C(l, j) p1(i)^j (1 - p1(i))^(l-j)``; states 0 and ``l`` are
    absorbing. With ``f1 == f0`` row ``i`` is Binomial(l, i/l): pure drift.
    """
    p1 = survival_probability(l, f1, f0)[:, None]
    j = np.arange(l + 1)
    binom = np.array([math.comb(l, k) for k in j], dtype=np.float64)
    return binom * np.power(p1, j) * np.power(1.0 - p1, l - j)


# ------------------------------------------------------- derived quantities ---
def _check_chain(P: np.ndarray) -> np.ndarray:
    """Validate a finite, square, row-stochastic matrix of at least 2 states."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise ValueError(f"transition matrix must be square (l+1)x(l+1) with l >= 1, got {P.shape}")
    if not np.isfinite(P).all() or (P < 0).any() or not np.allclose(P.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError("transition matrix must be finite, non-negative and row-stochastic")
    return P


def _solve_transient(P: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(I - Q) x = rhs`` for the transient block; lstsq when (near-)singular."""
    Q = P[1:-1, 1:-1]
    A = np.eye(Q.shape[0]) - Q
    try:
        x = np.linalg.solve(A, rhs)
        if np.isfinite(x).all():
            return x
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(A, rhs, rcond=None)[0]


def fixation_probabilities(P: np.ndarray) -> np.ndarray:
    """Probability of absorption in state ``l`` (all connections kept) from each state."""
    P = _check_chain(P)
    l = P.shape[0] - 1
    fix = np.zeros(l + 1)
    fix[l] = 1.0
    if l > 1:
        fix[1:l] = _solve_transient(P, P[1:l, l])
    return fix


def absorption_times(P: np.ndarray) -> np.ndarray:
    """Expected generations to absorption ``t = N 1`` with ``N = (I - Q)^-1``; 0 at 0 and ``l``."""
    P = _check_chain(P)
    l = P.shape[0] - 1
    t = np.zeros(l + 1)
    if l > 1:
        t[1:l] = _solve_transient(P, np.ones(l - 1))
    return t


def quasi_stationary(P: np.ndarray) -> np.ndarray:
    """Quasi-stationary distribution: normalised left Perron eigenvector of ``Q``.

    It is the long-run distribution of states conditioned on not yet being
    absorbed. Returned with length ``l+1`` (zeros at the absorbing states) so
    it indexes like every other per-state array; all NaN when ``l == 1``
    (there is no transient state, so it is undefined, not invented).
    """
    P = _check_chain(P)
    l = P.shape[0] - 1
    out = np.zeros(l + 1)
    if l == 1:
        return np.full(2, np.nan)
    vals, vecs = np.linalg.eig(P[1:l, 1:l].T)
    v = np.abs(np.real(vecs[:, int(np.argmax(np.real(vals)))]))
    out[1:l] = v / v.sum()
    return out


def state_entropy(population_bits: np.ndarray) -> float:
    """Shannon entropy (bits) of the population's distribution over states 0..l."""
    s = states_of(population_bits)
    if s.size == 0:
        return 0.0
    p = np.bincount(s) / s.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() + 0.0)


def predicted_generations_to_absorption(population_bits: np.ndarray, times: np.ndarray) -> float:
    """Mean over individuals of ``t[state]``: the theory's forecast of generations left."""
    s = states_of(population_bits)
    return float(np.mean(np.asarray(times)[s])) if s.size else math.nan


def observed_generations_to_convergence(
    best_fitness_per_generation: Sequence[float], tol: float = CONVERGENCE_TOL,
    patience: int = CONVERGENCE_PATIENCE,
) -> int | None:
    """Generations the search needed to converge, per ``CONVERGENCE_DEFINITION``.

    Args:
        best_fitness_per_generation: best (minimised) ``F`` of generations 0, 1, ...
        tol: relative improvement below which a generation counts as stagnant.
        patience: generations without improvement after the last improvement that mean converged.
    """
    if tol < 0 or patience < 1:
        raise ValueError(f"need tol >= 0 and patience >= 1, got tol={tol}, patience={patience}")
    b = np.asarray(best_fitness_per_generation, dtype=np.float64).ravel()
    if b.size == 0:
        return None
    b = np.minimum.accumulate(np.where(np.isfinite(b), b, np.inf))
    last = 0
    for k in range(1, b.size):
        prev, cur = b[k - 1], b[k]
        stagnant = cur == prev or (np.isfinite(prev) and prev - cur < tol * max(abs(prev), 1e-12))
        last = last if stagnant else k
    return last if b.size - 1 - last >= patience else None


def best_fitness_curve(logbook: Sequence[dict]) -> list[float]:
    """Best ``F`` of generations 0, 1, ... from logbook records (``generation``, ``best``).

    A generation logged twice (a resumed run) keeps its last record; a missing
    or non-finite best counts as +inf, as in ``CONVERGENCE_DEFINITION``.
    """
    rows = {int(r["generation"]): r.get("best") for r in logbook}
    out = []
    for g in sorted(rows):
        best = rows[g]
        out.append(float(best) if best is not None and math.isfinite(float(best)) else math.inf)
    return out


def cumulative_rows(P: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums of a transition matrix, each row ending at exactly 1.

    With these, :func:`move` draws a next state by one uniform number per chain;
    the last column is set to 1 so that rounding never leaves a draw unmatched.
    """
    cum = np.cumsum(np.asarray(P, dtype=float), axis=1)
    cum[:, -1] = 1.0
    return cum


def move(cum: np.ndarray, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One step of every chain in ``states`` (any shape) by the rows ``cum`` of :func:`cumulative_rows`.

    Draws ``rng.random(states.shape)`` once: the next state of a chain in state
    ``i`` is the first ``j`` with ``cum[i, j] >= u``.
    """
    u = rng.random(states.shape)
    return (cum[states] < u[..., None]).sum(axis=-1).clip(max=cum.shape[0] - 1)


def simulate_absorption_times(
    P: np.ndarray, start_state: int, n_runs: int, rng: np.random.Generator, max_steps: int
) -> np.ndarray:
    """Monte-Carlo steps to absorption in 0 or ``l`` for ``n_runs`` chains from ``start_state``.

    Returns float64 times; runs not absorbed within ``max_steps`` are NaN
    (censored, not guessed), so a mean over them visibly fails.
    """
    P = _check_chain(P)
    l = P.shape[0] - 1
    cum = cumulative_rows(P)
    state = np.full(n_runs, int(start_state), dtype=np.int64)
    times = np.full(n_runs, np.nan)
    times[(state == 0) | (state == l)] = 0.0
    for step in range(1, max_steps + 1):
        live = np.flatnonzero(np.isnan(times))
        if live.size == 0:
            break
        state[live] = move(cum, state[live], rng)
        done = live[(state[live] == 0) | (state[live] == l)]
        times[done] = step
    return times


# ----------------------------------------------------------------- storage ---
def _labels(labels: Sequence[str] | None, n: int, what: str) -> np.ndarray:
    """``n`` operator names as a fixed-width unicode array (no pickle needed); "" when unknown."""
    out = [""] * n if labels is None else [str(x) for x in labels]
    if len(out) != n:
        raise InvalidGenomeError(f"got {len(out)} {what} for {n} lineage moves")
    return np.asarray(out, dtype=f"<U{max([1] + [len(x) for x in out])}")


def compute_record(
    *, generation: int, parent_bits: np.ndarray, child_bits: np.ndarray,
    population_bits: np.ndarray, fitness: np.ndarray,
    operators: Sequence[str] | None = None, excluded: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Everything saved for one generation, as plain (non-object) arrays keyed by ``RECORD_KEYS``.

    Row ``k`` of ``parent_bits``/``child_bits`` is one counted move, made by
    ``operators[k]``. ``excluded`` names how each offspring that is not a
    counted move was made (``"elite"``, ``"champion"``, ...), so the moves and
    the exclusions together account for every offspring of the generation.
    """
    pop = _as_bits(population_bits, "population_bits")
    counts = empirical_counts(parent_bits, child_bits)
    l = pop.shape[1]
    if counts.shape[0] != l + 1:
        raise InvalidGenomeError(f"lineage arrays have l={counts.shape[0] - 1} but the population has l={l}")
    labels = _labels(operators, int(counts.sum()), "operator labels")
    empirical, observed = normalise_rows(counts)
    f1, f0 = allele_fitness(pop, fitness)
    P = theoretical_matrix(l, f1, f0)
    times = absorption_times(P)
    return {
        "generation": np.asarray(int(generation), dtype=np.int64), "l": np.asarray(l, dtype=np.int64),
        "counts": counts, "empirical": empirical, "observed": observed, "theoretical": P,
        "f1": np.asarray(f1), "f0": np.asarray(f0), "fixation": fixation_probabilities(P),
        "absorption_times": times, "quasi_stationary": quasi_stationary(P),
        "gene_survival": gene_survival(pop, fitness),
        "parent_bits": np.asarray(parent_bits, dtype=np.int8),
        "child_bits": np.asarray(child_bits, dtype=np.int8),
        "population_bits": pop.astype(np.int8), "fitness": np.asarray(fitness, dtype=np.float64),
        "state_entropy": np.asarray(state_entropy(pop)),
        "predicted_generations_to_absorption": np.asarray(predicted_generations_to_absorption(pop, times)),
        "operators": labels, "excluded": _labels(excluded, len(excluded), "exclusion labels"),
    }


def generation_path(markov_dir: str | os.PathLike, g: int) -> Path:
    """File of generation ``g`` inside a run's ``markov/`` directory: ``gen_NNNN.npz``."""
    return Path(markov_dir) / f"gen_{int(g):04d}.npz"


def save_generation(
    path: str | os.PathLike, *, generation: int, parent_bits: np.ndarray, child_bits: np.ndarray,
    population_bits: np.ndarray, fitness: np.ndarray,
    operators: Sequence[str] | None = None, excluded: Sequence[str] = (),
) -> None:
    """Compute the generation's record and write it atomically as one compressed ``.npz``.

    Written to ``path + ".tmp"`` in the same directory, then ``os.replace``d,
    so a crash never leaves a half-written record under the real name.
    """
    record = compute_record(generation=generation, parent_bits=parent_bits, child_bits=child_bits,
                            population_bits=population_bits, fitness=fitness,
                            operators=operators, excluded=excluded)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    try:
        with open(tmp, "wb") as fh:  # a file object stops numpy from appending ".npz"
            np.savez_compressed(fh, **record)
            fh.flush()
            sync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_generation(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one generation record; RunDirError (a GnasError) if missing, corrupt or incomplete."""
    try:
        with np.load(path, allow_pickle=False) as data:
            record = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise RunDirError(f"Markov record {path} does not exist; check the run directory path") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise RunDirError(f"Markov record {path} is corrupt ({type(exc).__name__}); "
                          "delete it and resume the run to regenerate it") from None
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise RunDirError(f"Markov record {path} lacks {', '.join(missing)}; "
                          "delete it and resume the run to regenerate it")
    return record


def load_run(markov_dir: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """All generation records of a run's ``markov/`` directory, sorted by generation."""
    d = Path(markov_dir)
    if not d.is_dir():
        raise RunDirError(f"no Markov directory at {d}; pass a run's markov/ directory")
    records = [load_generation(p) for p in d.glob("gen_*.npz")]
    return sorted(records, key=lambda r: int(r["generation"]))


def _finite_or_none(x: float) -> float | None:
    """Plain float, or None when not finite (strict JSON has no NaN/inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def summarise(markov_dir: str | os.PathLike, best_fitness_per_generation: Sequence[float]) -> dict:
    """JSON-ready summary of a run's ``markov/`` directory; see :func:`summarise_records`."""
    return summarise_records(load_run(markov_dir), best_fitness_per_generation, markov_dir)


def summarise_records(records: Sequence[dict[str, np.ndarray]],
                      best_fitness_per_generation: Sequence[float],
                      where: str | os.PathLike = "the run") -> dict:
    """JSON-ready summary: per-generation predictions next to the observed convergence.

    Non-finite predictions are reported as None so ``json.dumps`` output is strict JSON.
    """
    if not records:
        raise RunDirError(f"no gen_*.npz Markov records in {where}; run at least one generation first")
    ls = {int(r["l"]) for r in records}
    if len(ls) != 1:
        raise RunDirError(f"Markov records in {where} mix chromosome lengths {sorted(ls)}; "
                          "they come from different runs")
    return {
        "l": ls.pop(),
        "generations": [{
            "generation": int(r["generation"]),
            "predicted_generations_to_absorption": _finite_or_none(r["predicted_generations_to_absorption"]),
            "rows_observed": int(np.sum(r["observed"])),
            "state_entropy": _finite_or_none(r["state_entropy"]),
        } for r in records],
        "observed_generations_to_convergence":
            observed_generations_to_convergence(best_fitness_per_generation),
    }
