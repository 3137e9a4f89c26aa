"""Measuring the edge of chaos ``lambda_c`` of a search space (``gnas chaos``).

For each ``lambda`` of a sweep over [0, 1], chromosomes whose connection genes
are Bernoulli(``lambda``) are built with their initial weights and probed with a
batch of real inputs and the same batch slightly perturbed
(:mod:`gnas.backend.probe`): the mean log growth of the perturbation per layer
is a maximal Lyapunov exponent, negative in the ordered regime (perturbations
die out) and positive in the chaotic one. ``lambda_c`` is where the exponent
crosses zero, linearly interpolated between sweep points. The sweep is noisy, so
when the curve crosses zero more than once the last crossing from below counts:
beyond it every measured ``lambda`` is chaotic. Without any crossing the paper's
preset for the kind of data (0.881 images, 0.786 text and tabular) is used, and
the result says so.

``train.weight_scale`` (sigma^2 of the fan-in initialisation) decides where the
crossing lies: in deep linear networks of masked weights the exponent is
``0.5 * log(lambda * sigma^2)``, so ``lambda_c = 1 / sigma^2`` (``theory=True``
measures exactly that, through the same builder).

No TensorFlow at import: the probe is imported when a sweep runs.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gnas.chaos import population as chaos
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import ConfigError, DataError
from gnas.genome.space import Bits, SearchSpace

SWEEP_POINTS = 11     # lambda = 0, 0.1, ..., 1
SWEEP_SAMPLES = 8     # chromosomes (and weight draws) per lambda
BATCH = 64            # real inputs pushed through every network
MIN_POINTS = 3
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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("sweep", "extra")}
        out["sweep"] = [p.to_dict() for p in self.sweep]
        out["crossing"] = self.source == "measured"
        return {**out, **self.extra}


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


def sample_chromosomes(space: SearchSpace, lam: float, count: int,
                       rng: np.random.Generator) -> list[Bits]:
    """``count`` repaired chromosomes: connection genes Bernoulli(lam), the rest uniform."""
    out = []
    for _ in range(count):
        bits = rng.integers(0, 2, space.length)
        bits[: space.l] = rng.random(space.l) < lam
        out.append(space.repair(tuple(int(b) for b in bits)))
    return out


def network_seed(seed: int, point: int, sample: int) -> int:
    """Weight seed of one probed network: distinct per (run seed, lambda, sample)."""
    return (seed * 1_000_003 + point * 1_009 + sample) % (2**31 - 1)


def measure_search_space(space: SearchSpace, x: np.ndarray, lambdas: np.ndarray, *,
                         weight_scale: float, samples: int, seed: int) -> list[SweepPoint]:
    """Exponent per lambda for networks of ``space``, built with their initial weights."""
    from gnas.backend import probe

    rng = np.random.default_rng(seed)
    out = []
    for i, lam in enumerate(lambdas):
        archs = [space.decode(b) for b in sample_chromosomes(space, float(lam), samples, rng)]
        seeds = [network_seed(seed, i, k) for k in range(samples)]
        values = probe.probe_many(archs, x, weight_scale=weight_scale, seeds=seeds)
        out.append(SweepPoint(float(lam), float(np.mean(values)), float(np.std(values))))
    return out


def measure_theory(x: np.ndarray, lambdas: np.ndarray, *, weight_scale: float, samples: int,
                   seed: int, depth: int = THEORY_DEPTH, width: int = THEORY_WIDTH) -> list[SweepPoint]:
    """Exponent per lambda for deep linear chains whose weights are kept with probability lambda."""
    from gnas.backend import probe

    arch = probe.chain_architecture(depth, width, x.shape[1:])
    out = []
    for i, lam in enumerate(lambdas):
        seeds = [network_seed(seed, i, k) for k in range(samples)]
        values = probe.probe_many([arch] * samples, x, weight_scale=weight_scale, seeds=seeds,
                                  linear=True, mask_rate=float(lam))
        out.append(SweepPoint(float(lam), float(np.mean(values)), float(np.std(values))))
    return out


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
    return ("no zero crossing: the exponent stays negative up to lambda = 1 (ordered); a larger "
            "train.weight_scale moves lambda_c into the sweep")


def preset_for(kind: str) -> float:
    """The paper's lambda_c for a kind of data (image, text, vector)."""
    return chaos.PAPER_LAMBDA_C.get(kind, chaos.PAPER_LAMBDA_C["vector"])


def conclude(sweep: list[SweepPoint], kind: str, **fields: Any) -> Calibration:
    """A Calibration from a sweep: the interpolated crossing, else the paper's preset."""
    crossing = zero_crossing([p.lam for p in sweep], [p.exponent for p in sweep])
    if crossing is not None:
        return Calibration(lambda_c=round(crossing, 6), source="measured", sweep=sweep,
                           reason="interpolated zero crossing of the Lyapunov exponent", **fields)
    preset = preset_for(kind)
    return Calibration(lambda_c=preset, source="preset", sweep=sweep,
                       reason=f"{no_crossing_reason(sweep)}; using the paper's {kind} preset {preset}",
                       **fields)


def calibrate(dataset: Dataset, space: SearchSpace | None, *, weight_scale: float,
              lambdas: np.ndarray | None = None, samples: int = SWEEP_SAMPLES, batch: int = BATCH,
              seed: int = 0, threads: int = 0, theory: bool = False) -> Calibration:
    """Sweep lambda and find lambda_c for ``space`` (or for the linear theory networks).

    Args:
        dataset: Where the batch of real inputs comes from.
        space: The search space; None (or ``theory``) probes the linear theory networks.
        weight_scale: sigma^2 of the fan-in initialisation.
        lambdas: Sweep values (default: :data:`SWEEP_POINTS` from 0 to 1).
        samples: Networks per lambda.
        batch: Real inputs per network.
        seed: Seeds chromosomes, weights, batch and perturbations.
        threads: TensorFlow threads (0 = all cores), as for evaluations.
        theory: Probe deep linear masked networks instead (``lambda_c = 1 / sigma^2``).
    """
    lambdas = sweep_lambdas(SWEEP_POINTS) if lambdas is None else check_lambdas(lambdas)
    if samples < 1:
        raise ConfigError(f"the sweep needs at least 1 sample per lambda. Received: samples={samples}.")
    x = input_batch(dataset, batch, seed)
    theory = theory or space is None
    started = time.perf_counter()
    sweep = run_sweep(None if theory else space, x, lambdas, weight_scale=weight_scale,
                      samples=samples, seed=seed, threads=threads)
    result = conclude(sweep, dataset.kind, weight_scale=weight_scale, samples=samples, batch=batch,
                      seed=seed, network="theory" if theory else "search",
                      expected=round(1.0 / weight_scale, 6) if theory else None)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def run_sweep(space: SearchSpace | None, x: np.ndarray, lambdas: np.ndarray, *, weight_scale: float,
              samples: int, seed: int, threads: int) -> list[SweepPoint]:
    """The sweep itself, with TensorFlow set up as for evaluations (None: theory networks)."""
    from gnas.backend import runtime

    runtime.configure(threads)
    from gnas.backend import probe

    probe.reset()
    try:
        if space is None:
            return measure_theory(x, lambdas, weight_scale=weight_scale, samples=samples, seed=seed)
        return measure_search_space(space, x, lambdas, weight_scale=weight_scale,
                                    samples=samples, seed=seed)
    finally:
        probe.reset()


# ---------------------------------------------------------------- the plot
def plot_sweep(result: Calibration, path: str | Path, title: str = "") -> Path:
    """Exponent vs lambda with its spread, zero line and lambda_c marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lam = np.array([p.lam for p in result.sweep])
    exp = np.array([p.exponent for p in result.sweep])
    std = np.array([p.std for p in result.sweep])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(lam, exp, yerr=std, marker="o", capsize=3, label="measured exponent")
    if result.network == "theory":
        grid = np.linspace(max(lam.min(), 1e-3), lam.max(), 200)
        ax.plot(grid, 0.5 * np.log(grid * result.weight_scale), "--", label="0.5 log(lambda sigma^2)")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axvline(result.lambda_c, color="red", ls=":",
               label=f"lambda_c = {result.lambda_c:.3f} ({result.source})")
    low = float(np.percentile(exp, 5)) - float(std.max())
    ax.set_ylim(bottom=max(low, -1.5))
    ax.set_xlabel("lambda (fraction of active connection genes)")
    ax.set_ylabel("Lyapunov exponent (log growth per layer)")
    ax.set_title(title or f"edge of chaos, weight scale {result.weight_scale:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


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
    """The cached calibration at ``path`` if it is readable and for this data and space."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("dataset") != dataset or data.get("space") != fingerprint:
        return None
    value, source = data.get("lambda_c"), data.get("source")
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0 or source not in ("measured", "preset"):
        return None
    return data


def calibrate_for_run(cfg: RunConfig, dataset: Dataset, space: SearchSpace,
                      run_dir) -> tuple[float, str]:
    """lambda_c of a run: from ``RUN_DIR/chaos.json`` when it matches, else measured now.

    The measurement uses the run's seed and weight scale, the default sweep and a
    batch of at most :data:`BATCH` training inputs, writes ``chaos.json`` and
    ``chaos.png`` into the run directory and returns ``(lambda_c, source)``.
    """
    from gnas.runs.atomic import atomic_write_text

    path = Path(run_dir.path) / CACHE_NAME
    fingerprint = space_fingerprint(space, cfg.train.weight_scale)
    cached = load_cached(path, cfg.data.dataset, fingerprint)
    if cached is not None:
        return float(cached["lambda_c"]), str(cached["source"])
    batch = min(BATCH, len(dataset.x_train))
    result = calibrate(dataset, space, weight_scale=cfg.train.weight_scale, batch=batch,
                       seed=cfg.evolution.seed, threads=cfg.train.threads)
    png = plot_sweep(result, Path(run_dir.path) / PLOT_NAME, title=f"edge of chaos: {cfg.data.dataset}")
    record = {**result.to_dict(), "dataset": cfg.data.dataset, "space": fingerprint, "png": str(png)}
    atomic_write_text(path, json.dumps(record, indent=1))
    print(f"gnas: lambda_c = {result.lambda_c:.3f} ({result.source}: {result.reason}; "
          f"{result.seconds:.1f} s)", file=sys.stderr)
    return result.lambda_c, result.source
