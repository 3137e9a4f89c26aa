"""Measuring the edge of chaos ``lambda_c`` of a search space (``gnas chaos``).

For each ``lambda`` of a sweep over [0, 1], chromosomes whose connection genes
are Bernoulli(``lambda``) are built with their initial weights and probed with a
batch of real inputs and the same batch slightly perturbed
(:mod:`gnas.backend.probe`): the mean log growth of the perturbation per layer
is a maximal Lyapunov exponent, negative in the ordered regime (perturbations
die out) and positive in the chaotic one. ``lambda_c`` is where the exponent
crosses zero, linearly interpolated between sweep points. The sweep is noisy, so
when the curve crosses zero more than once the last crossing from below counts:
beyond it every measured ``lambda`` is chaotic.

Each sweep point is a table: :data:`SWEEP_SAMPLES` chromosomes (each with its own
weight draw) times :data:`BATCHES` batches of real inputs. A two-way bootstrap of
those tables (:mod:`gnas.chaos.bootstrap`) gives the crossing a 95 % interval
(``lambda_c_ci``) and decides whether it is ``robust``. Without a robust crossing
the paper's preset for the kind of data (0.881 images, 0.786 text and tabular) is
used, and the result says why.

With a run's configuration the chromosomes are drawn exactly as that run draws
its generation 0 (:func:`gnas.chaos.population.initial_population`: the
edge-of-chaos orbit at ``lambda``, repair, and growth's base models when growth
is on), so the exponent is that of the networks the search starts from, with
the connection genes that those networks express. Without one, connection genes
are plain Bernoulli(``lambda``) bits.

``train.weight_scale`` (sigma^2 of the fan-in initialisation) decides where the
crossing lies: in deep linear networks of masked weights the exponent is
``0.5 * log(lambda * sigma^2)``, so ``lambda_c = 1 / sigma^2`` (``theory=True``
measures exactly that, through the same builder).

No TensorFlow at import: the probe is imported when a sweep runs. The figure of
a sweep is drawn by :mod:`gnas.report.analysis`. A sweep takes seconds per
``lambda``, so it reports each point it starts to a ``progress`` callback (by
default an INFO line on the ``gnas`` logger, which the command line prints).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gnas.chaos import bootstrap, cache
from gnas.chaos import population as chaos
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import ConfigError, DataError
from gnas.genome.space import Bits, SearchSpace

log = logging.getLogger(__name__)

# progress(lambda, point, points): called as the sweep starts point ``point`` (1-based) of ``points``.
Progress = Callable[[float, int, int], None]

SWEEP_POINTS = 11     # lambda = 0, 0.1, ..., 1
SWEEP_SAMPLES = 32    # chromosomes (and weight draws) per lambda
BATCHES = 4           # batches of real inputs per chromosome (the bootstrap's columns)
BATCH = 64            # real inputs per batch
MIN_POINTS = 3
MIN_SAMPLES = 4       # networks per point a sweep kept within a time bound goes down to
THEORY_DEPTH = 16     # node layers of the linear chain of the theory check
THEORY_WIDTH = 128
CACHE_NAME = "chaos.json"
PLOT_NAME = "chaos.png"


@dataclass(frozen=True)
class SweepPoint:
    """Mean and standard deviation of the exponent over the samples of one lambda."""

    lam: float
    exponent: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"lambda": self.lam, "exponent": self.exponent, "std": self.std}


@dataclass
class Calibration:
    """The outcome of a sweep: ``lambda_c``, where it came from, and the curve."""

    lambda_c: float
    source: str                      # "measured" or "preset"
    sweep: list[SweepPoint]
    reason: str                      # how lambda_c was found, or why the preset was used
    weight_scale: float
    samples: int
    batch: int
    seed: int
    network: str = "search"          # "search" (the search space) or "theory" (linear, masked)
    expected: float | None = None    # 1 / sigma^2 for the theory check
    seconds: float = 0.0
    batches: int = 1
    crossing_at: float | None = None           # the mean curve's crossing, robust or not
    lambda_c_ci: list[float] | None = None     # its 95 % bootstrap interval
    robust: bool = False
    crossing_share: float = 0.0                # bootstrap replicates that cross zero
    chromosomes: str = "bernoulli"             # "run" (as the run initialises) or "bernoulli"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("sweep", "extra")}
        out["sweep"] = [p.to_dict() for p in self.sweep]
        out["crossing"] = self.source == "measured"
        return {**out, **self.extra}


Sampler = Callable[[float, int, np.random.Generator], list[Bits]]


# ----------------------------------------------------------------- the sweep
def sweep_lambdas(points: int) -> np.ndarray:
    """``points`` evenly spaced values of lambda from 0 to 1 (at least 3)."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < MIN_POINTS:
        raise ConfigError(f"a sweep needs at least {MIN_POINTS} points in [0, 1]. "
                          f"Received: points={points!r}.")
    return np.linspace(0.0, 1.0, int(points))


def check_lambdas(values: Sequence[float]) -> np.ndarray:
    """Explicit sweep values: each in [0, 1], at least 3, returned sorted and distinct."""
    for value in values:
        chaos.check_lambda(float(value), "lambda")
    out = np.unique(np.asarray(values, dtype=float))
    if len(out) < MIN_POINTS:
        raise ConfigError(f"a sweep needs at least {MIN_POINTS} distinct lambda values. "
                          f"Received: {len(out)}.")
    return out


def input_batch(dataset: Dataset, size: int = BATCH, seed: int = 0) -> np.ndarray:
    """``size`` training inputs drawn without replacement; DataError if there are fewer."""
    if size < 1:
        raise ConfigError(f"the probe batch must hold at least 1 sample. Received: batch={size}.")
    n = len(dataset.x_train)
    if n < size:
        raise DataError(f"{dataset.name} has {n} training samples, fewer than the probe batch of "
                        f"{size}; use more data (--max-train-samples) or a smaller --batch.")
    index = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    return np.asarray(dataset.x_train[index], dtype=np.float32)


def input_batches(dataset: Dataset, count: int, size: int = BATCH, seed: int = 0) -> list[np.ndarray]:
    """``count`` batches of :func:`input_batch`, each drawn with its own seed."""
    return [input_batch(dataset, size, seed * 7_919 + k) for k in range(count)]


def sample_chromosomes(space: SearchSpace, lam: float, count: int,
                       rng: np.random.Generator) -> list[Bits]:
    """``count`` repaired chromosomes: connection genes Bernoulli(lam), the rest uniform."""
    out = []
    for _ in range(count):
        bits = rng.integers(0, 2, space.length)
        bits[: space.l] = rng.random(space.l) < lam
        out.append(space.repair(tuple(int(b) for b in bits)))
    return out


def run_sampler(cfg: RunConfig, space: SearchSpace) -> Sampler:
    """Chromosomes drawn as a run with ``cfg`` draws generation 0, at a given lambda.

    It calls the run's own initialisation, so growth, repair and whatever else
    shapes generation 0 shape the probed networks too.
    """
    import dataclasses

    def draw(lam: float, count: int, rng: np.random.Generator) -> list[Bits]:
        evolution = dataclasses.replace(cfg.evolution, population=count, init="coe")
        run_cfg = dataclasses.replace(cfg, evolution=evolution)
        return list(chaos.initial_population(run_cfg, space, rng, lambda: (lam, "sweep")).genomes)
    return draw


def network_seed(seed: int, point: int, sample: int) -> int:
    """Weight seed of one probed network: distinct per (run seed, lambda, sample)."""
    return (seed * 1_000_003 + point * 1_009 + sample) % (2**31 - 1)


def log_progress(lam: float, point: int, points: int) -> None:
    """The default :data:`Progress`: one INFO line per sweep point (with an ETA, see :class:`SweepProgress`)."""
    log.info("calibrating lambda_c: lambda %.2f (%d/%d) ...", lam, point, points)


class SweepProgress:
    """One INFO line per sweep point with the elapsed time and the time left, from the points done."""

    def __init__(self) -> None:
        self.started: float | None = None

    def __call__(self, lam: float, point: int, points: int) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        elapsed = now - self.started
        eta = f", about {elapsed / (point - 1) * (points - point + 1):.0f} s left" if point > 1 else ""
        log.info("calibrating lambda_c: lambda %.2f (%d/%d), %.0f s elapsed%s ...", lam, point, points,
                 elapsed, eta)


def measure_search_space(space: SearchSpace, batches: Sequence[np.ndarray], lambdas: np.ndarray, *,
                         weight_scale: float, samples: int, seed: int,
                         sampler: Sampler | None = None,
                         progress: Progress | None = None, max_seconds: float = 0.0) -> list[np.ndarray]:
    """Exponent tables (chromosomes x batches) per lambda for networks of ``space``.

    Row ``k`` of every table comes from the same random numbers (generator state
    and weight seed), so neighbouring sweep points differ by the threshold only
    and the noise of the crossing shrinks; the bootstrap resamples rows jointly
    across the sweep to keep that pairing. With ``max_seconds`` the sweep keeps
    to it (:class:`_SweepBound`): fewer networks per point, else fewer points.
    """
    from gnas.backend import probe

    draw = sampler or (lambda lam, count, rng: sample_chromosomes(space, lam, count, rng))
    out: list[np.ndarray | None] = [None] * len(lambdas)
    bound = _SweepBound(max_seconds, len(lambdas))
    samples = bound.first_samples(samples)
    for step, i in enumerate(bound.order()):
        lam = lambdas[i]
        samples = bound.samples(out, samples)
        if bound.over(step):
            log.info("calibrating lambda_c: stopped after %d of %d points to keep within %.0f s",
                     step, len(lambdas), max_seconds)
            break
        if progress is not None:
            progress(float(lam), step + 1, len(lambdas))
        # common random numbers: every lambda starts from the same generator and weight
        # seeds, so sample k is one orbit (or uniform draw) thresholded ever higher
        archs = [space.decode(b) for b in draw(float(lam), samples, np.random.default_rng(seed))]
        seeds = [network_seed(seed, 0, k) for k in range(samples)]
        out[i] = probe.probe_table(archs, batches, weight_scale=weight_scale, seeds=seeds)
    return out  # type: ignore[return-value]


def coarse_to_fine(points: int) -> list[int]:
    """Sweep indices ends first, then midpoints of ever smaller gaps: ``0, 10, 5, 2, 7, ...``.

    A sweep stopped early then still spans the whole range of lambda.
    """
    order, gaps = [0, points - 1] if points > 1 else [0], [(0, points - 1)]
    while gaps:
        lo, hi = gaps.pop(0)
        mid = (lo + hi) // 2
        if lo < mid < hi:
            order.append(mid)
            gaps += [(lo, mid), (mid, hi)]
    return order


class _SweepBound:
    """Keeps a sweep within ``max_seconds`` (0: no bound, the points in order).

    With a bound the points go coarse to fine (:func:`coarse_to_fine`), the
    first two (the cheapest and the dearest lambda) with a quarter of the
    networks; after them, the networks per point shrink (to no fewer than :data:`MIN_SAMPLES`) so that the whole sweep fits,
    the tables measured so far cut to the same rows (row ``k`` is the same draw
    at every point); a sweep that still runs out of time stops after its last
    point in time, with at least :data:`MIN_POINTS` points.
    """

    def __init__(self, max_seconds: float, points: int) -> None:
        self.max_seconds, self.points = max_seconds, points
        self.started = time.perf_counter()

    def first_samples(self, samples: int) -> int:
        """Networks per point of the first two points: a quarter with a bound (they time the sweep)."""
        return max(MIN_SAMPLES, samples // 4) if self.max_seconds > 0 else samples

    def order(self) -> list[int]:
        return coarse_to_fine(self.points) if self.max_seconds > 0 else list(range(self.points))

    def samples(self, tables: list[np.ndarray | None], samples: int) -> int:
        done = [k for k, t in enumerate(tables) if t is not None]
        if self.max_seconds <= 0 or len(done) != 2:
            return samples
        per_point = (time.perf_counter() - self.started) / 2
        if per_point * self.points <= self.max_seconds:
            return samples
        fewer = max(MIN_SAMPLES, int(samples * self.max_seconds / (per_point * self.points)))
        if fewer < samples:
            for k in done:
                tables[k] = tables[k][:fewer]
            log.info("calibrating lambda_c: %d networks per point instead of %d, to keep within %.0f s",
                     fewer, samples, self.max_seconds)
        return min(fewer, samples)

    def over(self, done: int) -> bool:
        if self.max_seconds <= 0 or done < MIN_POINTS:
            return False
        elapsed = time.perf_counter() - self.started
        # the points left are the dearer half on average (many connections), and the
        # bootstrap follows the sweep: half a point more of room
        return elapsed + 1.5 * elapsed / done > self.max_seconds


def measure_theory(batches: Sequence[np.ndarray], lambdas: np.ndarray, *, weight_scale: float,
                   samples: int, seed: int, depth: int = THEORY_DEPTH,
                   width: int = THEORY_WIDTH, progress: Progress | None = None) -> list[np.ndarray]:
    """Exponent tables per lambda for deep linear chains whose weights are kept with probability lambda."""
    from gnas.backend import probe

    arch = probe.chain_architecture(depth, width, batches[0].shape[1:])
    out = []
    for i, lam in enumerate(lambdas):
        if progress is not None:
            progress(float(lam), i + 1, len(lambdas))
        seeds = [network_seed(seed, i, k) for k in range(samples)]
        out.append(probe.probe_table([arch] * samples, batches, weight_scale=weight_scale,
                                     seeds=seeds, linear=True, mask_rate=float(lam)))
    return out


def summarise(lambdas: np.ndarray, tables: Sequence[np.ndarray]) -> list[SweepPoint]:
    """Mean and spread of each table (the spread is over all its networks and batches)."""
    return [SweepPoint(float(lam), float(np.mean(t)), float(np.std(t))) for lam, t in zip(lambdas, tables)]


# ------------------------------------------------------------ zero crossing
def zero_crossing(lambdas: Sequence[float], exponents: Sequence[float]) -> float | None:
    """Last lambda where the exponent goes from negative to non-negative, interpolated.

    Returns None when the exponent never changes sign that way (all ordered, or
    chaotic already at the smallest lambda).
    """
    lam = np.asarray(lambdas, dtype=float)
    exp = np.asarray(exponents, dtype=float)
    found = None
    for k in range(len(lam) - 1):
        a, b = exp[k], exp[k + 1]
        if a < 0.0 <= b:
            found = float(lam[k] + (lam[k + 1] - lam[k]) * (-a) / (b - a))
    return found


def no_crossing_reason(sweep: Sequence[SweepPoint]) -> str:
    """Why a sweep has no crossing, and which way to move the weight scale."""
    if all(p.exponent >= 0 for p in sweep):
        return ("no zero crossing: the exponent is >= 0 at every lambda (chaotic even with few "
                "connections); a smaller train.weight_scale moves lambda_c into the sweep")
    last = max(p.lam for p in sweep)
    return (f"no zero crossing: the exponent stays negative up to lambda = {last:g} (ordered); a larger "
            "train.weight_scale moves lambda_c into the sweep")


def preset_for(kind: str) -> float:
    """The paper's lambda_c for a kind of data (image, text, vector)."""
    return chaos.PAPER_LAMBDA_C.get(kind, chaos.PAPER_LAMBDA_C["vector"])


def conclude(sweep: list[SweepPoint], kind: str, tables: Sequence[np.ndarray] | None = None,
             **fields: Any) -> Calibration:
    """A Calibration from a sweep: a robust crossing, else the paper's preset and why.

    ``tables`` (chromosomes x batches per sweep point) feed the bootstrap; a bare
    curve has nothing to resample, so its crossing has no interval and is not robust.
    """
    lambdas = [p.lam for p in sweep]
    crossing = zero_crossing(lambdas, [p.exponent for p in sweep])
    if tables is None:
        verdict = bootstrap.CrossingInterval(None, None, float(crossing is not None), 0, False,
                                             "a single curve has no bootstrap interval")
    else:
        verdict = bootstrap.crossing_interval(lambdas, tables, zero_crossing,
                                              seed=int(fields.get("seed", 0)))
    ci = None if verdict.lo is None else [verdict.lo, verdict.hi]
    common = dict(sweep=sweep, lambda_c_ci=ci, crossing_share=round(verdict.share, 4),
                  crossing_at=None if crossing is None else round(crossing, 6), **fields)
    if crossing is not None and verdict.robust:
        return Calibration(lambda_c=round(crossing, 6), source="measured", robust=True,
                           reason=f"interpolated zero crossing of the Lyapunov exponent; {verdict.reason}",
                           **common)
    preset = preset_for(kind)
    why = (f"no robust crossing: {no_crossing_reason(sweep)}" if crossing is None
           else f"no robust crossing: the mean curve crosses at {crossing:.3f}, but {verdict.reason}")
    return Calibration(lambda_c=preset, source="preset", robust=False,
                       reason=f"{why}; using the paper's {kind} preset {preset}", **common)


def calibrate(dataset: Dataset, space: SearchSpace | None, *, weight_scale: float,
              lambdas: np.ndarray | None = None, samples: int = SWEEP_SAMPLES, batch: int = BATCH,
              batches: int = BATCHES, seed: int = 0, threads: int = 0, theory: bool = False,
              cfg: RunConfig | None = None, progress: Progress | None = log_progress,
              max_seconds: float = 0.0) -> Calibration:
    """Sweep lambda and find lambda_c for ``space`` (or for the linear theory networks).

    Args:
        dataset: Where the batches of real inputs come from.
        space: The search space; None (or ``theory``) probes the linear theory networks.
        weight_scale: sigma^2 of the fan-in initialisation.
        lambdas: Sweep values (default: :data:`SWEEP_POINTS` from 0 to 1).
        samples: Chromosomes (networks) per lambda.
        batch: Real inputs per batch.
        batches: Batches pushed through every network.
        seed: Seeds chromosomes, weights, batches, perturbations and the bootstrap.
        threads: TensorFlow threads (0 = all cores), as for evaluations.
        theory: Probe deep linear masked networks instead (``lambda_c = 1 / sigma^2``).
        cfg: The run's configuration: chromosomes are then drawn as that run draws
            generation 0 (:func:`run_sampler`); None draws Bernoulli(lambda) genes.
        progress: Told of each sweep point as it starts; None says nothing.
        max_seconds: Keep the sweep within this many seconds (0: no bound): fewer
            networks per point, else fewer points (a time-budgeted run's share).
    """
    lambdas = sweep_lambdas(SWEEP_POINTS) if lambdas is None else check_lambdas(lambdas)
    if samples < 1:
        raise ConfigError(f"the sweep needs at least 1 sample per lambda. Received: samples={samples}.")
    if batches < 1:
        raise ConfigError(f"the sweep needs at least 1 input batch. Received: batches={batches}.")
    xs = input_batches(dataset, batches, batch, seed)
    theory = theory or space is None
    sampler = run_sampler(cfg, space) if cfg is not None and not theory else None
    started = time.perf_counter()
    if progress is log_progress:
        progress = SweepProgress()
    tables = run_sweep(None if theory else space, xs, lambdas, weight_scale=weight_scale,
                       samples=samples, seed=seed, threads=threads, sampler=sampler,
                       progress=progress, max_seconds=max_seconds)
    lambdas = np.asarray([lam for lam, t in zip(lambdas, tables) if t is not None])
    tables = [t for t in tables if t is not None]
    result = conclude(summarise(lambdas, tables), dataset.kind, tables, weight_scale=weight_scale,
                      samples=int(tables[-1].shape[0]), batch=batch, batches=batches, seed=seed,
                      network="theory" if theory else "search",
                      chromosomes="run" if sampler is not None else "bernoulli",
                      expected=round(1.0 / weight_scale, 6) if theory else None)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def run_sweep(space: SearchSpace | None, batches: Sequence[np.ndarray], lambdas: np.ndarray, *,
              weight_scale: float, samples: int, seed: int, threads: int,
              sampler: Sampler | None = None, progress: Progress | None = None,
              max_seconds: float = 0.0) -> list[np.ndarray]:
    """The sweep itself, with TensorFlow set up as for evaluations (None: theory networks)."""
    from gnas.backend import runtime

    runtime.configure(threads)
    from gnas.backend import probe

    probe.reset()
    try:
        if space is None:
            return measure_theory(batches, lambdas, weight_scale=weight_scale, samples=samples,
                                  seed=seed, progress=progress)
        return measure_search_space(space, batches, lambdas, weight_scale=weight_scale,
                                    samples=samples, seed=seed, sampler=sampler, progress=progress,
                                    max_seconds=max_seconds)
    finally:
        probe.reset()


# ------------------------------------------------------ the run's lambda_c
def space_fingerprint(space: SearchSpace, weight_scale: float) -> str:
    """A hash of everything that changes the probed networks: layout, shapes, weight scale."""
    blob = json.dumps({"space": {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in asdict(space.cfg).items()},
                       "family": space.family, "input_shape": list(space.input_shape),
                       "n_outputs": space.n_outputs, "task": space.task,
                       "length": space.length, "weight_scale": weight_scale},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_cached(path: Path, dataset: str, fingerprint: str) -> dict[str, Any] | None:
    """The run's own calibration at ``path`` if it is sound and for this data and space
    (read and checked as a kept one is: :func:`gnas.chaos.cache.problem`)."""
    data, why = cache.read_record(path)
    if why is None and cache.problem(data, key=None, dataset=dataset, fingerprint=fingerprint) is None:
        return data
    return None


def run_cache_key(cfg: RunConfig, dataset: Dataset, space: SearchSpace) -> str:
    """The calibration cache's key of a run's sweep (:func:`gnas.chaos.cache.calibration_key`)."""
    batch = min(BATCH, len(dataset.x_train))
    return cache.calibration_key(space_fingerprint(space, cfg.train.weight_scale),
                                 seed=cfg.evolution.seed, growth=cfg.evolution.growth,
                                 inputs=input_batches(dataset, BATCHES, batch, cfg.evolution.seed))


def calibrate_for_run(cfg: RunConfig, dataset: Dataset, space: SearchSpace, run_dir,
                      plot: Callable[[dict[str, Any], Path, str], Path] | None = None,
                      max_seconds: float = 0.0) -> tuple[float, str]:
    """lambda_c of a run: from ``RUN_DIR/chaos.json`` when it matches, else kept or measured now.

    The measurement uses the run's seed, weight scale and initialisation, the
    default sweep and batches of at most :data:`BATCH` training inputs. A sweep
    an earlier run made on the same inputs and networks is taken from the
    calibration cache (:mod:`gnas.chaos.cache`); a new one is kept there. Either
    way the record goes into ``chaos.json`` of the run directory (and
    ``chaos.png`` through ``plot``, the report's figure writer, when given), and
    ``(lambda_c, source)`` is returned. ``max_seconds`` bounds the sweep (a
    time-budgeted run's share); a sweep cut short to keep within it is not kept
    for later runs.
    """
    from gnas.runs.atomic import atomic_write_text

    path = Path(run_dir.path) / CACHE_NAME
    fingerprint = space_fingerprint(space, cfg.train.weight_scale)
    cached = load_cached(path, cfg.data.dataset, fingerprint)
    if cached is not None:
        return float(cached["lambda_c"]), str(cached["source"])
    batch = min(BATCH, len(dataset.x_train))
    key = run_cache_key(cfg, dataset, space)
    record = cache.load(key, cfg.data.dataset, fingerprint)  # None: measure afresh
    if record is not None:
        log.info("lambda_c = %.3f (%s: %s; as measured by an earlier run, kept in %s)",
                 record["lambda_c"], record["source"], record.get("reason", ""), cache.path_for(key))
    else:
        result = calibrate(dataset, space, weight_scale=cfg.train.weight_scale, batch=batch,
                           seed=cfg.evolution.seed, threads=cfg.train.threads, cfg=cfg,
                           max_seconds=max_seconds)
        record = {**result.to_dict(), "dataset": cfg.data.dataset, "space": fingerprint}
        if result.samples == SWEEP_SAMPLES and len(result.sweep) == SWEEP_POINTS:
            cache.store(key, record)  # a sweep cut short is this run's only
        log.info("lambda_c = %.3f (%s: %s; %.1f s)", result.lambda_c, result.source, result.reason,
                 result.seconds)
    record = {k: v for k, v in record.items() if k != "key"}
    if plot is not None:
        png = plot(record, Path(run_dir.path) / PLOT_NAME, f"edge of chaos: {cfg.data.dataset}")
        record["png"] = str(png)
    atomic_write_text(path, json.dumps(record, indent=1))
    return float(record["lambda_c"]), str(record["source"])
