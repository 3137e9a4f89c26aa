"""What the search benchmarks share: one complete ``gnas evolve`` per arm and seed, and its figures.

An arm is a name and its config overrides. For every seed the arms run one after
another (interleaved seed by seed, so machine load falls on all alike), each a
complete search with the final training to convergence; a finished run under
``--out`` is reused. Printed per arm: best search validation error, the delivered
model's test score over its final seeds (mean ± std over seeds and runs), epochs
spent (search trainings, promotions counted by the epochs they add, re-trainings and
final trainings) and wall seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from gnas import session
from gnas.chaos import cache
from gnas.config import RunConfig, load_config
from gnas.records import EvalResult
from gnas.runs.store import EvaluationStore
from gnas.search.fidelity import epochs_trained, result_epochs

Arms = Mapping[str, Mapping[str, Any]]
#: Makes one arm's run directory for a seed: ``(arm, its config, run directory) -> None``.
Runner = Callable[[str, RunConfig, Path], None]


def run_dir(out: Path, dataset: str, arm: str, seed: int) -> Path:
    """Where an arm's run for ``seed`` lives under ``out``."""
    return out / f"{dataset}-{arm}-seed{seed}"


def search(arm: str, cfg: RunConfig, path: Path) -> None:
    """A complete ``gnas evolve`` with ``cfg`` into ``path`` (the default runner).

    The calibration cache is off for it: every arm's run measures its own lambda_c
    as a first run does, so the arm that happens to run first for a seed does not
    pay a sweep the others take from the cache, and wall seconds compare.
    """
    with calibration_cache_off():
        session.start(cfg, path, out=io.StringIO(), progress=False)


@contextlib.contextmanager
def calibration_cache_off() -> Iterator[None]:
    """``$GNAS_CACHE_DIR`` set to ``off`` for the duration, then as it was."""
    before = os.environ.get(cache.CACHE_ENV)
    os.environ[cache.CACHE_ENV] = "off"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(cache.CACHE_ENV, None)
        else:
            os.environ[cache.CACHE_ENV] = before


def run(arm: str, settings: Mapping[str, Any], dataset: str, seed: int, overrides: Mapping[str, Any],
        out: Path, runner: Runner = search) -> tuple[Path, float]:
    """One arm's complete run (or its finished directory) and its wall seconds."""
    path = run_dir(out, dataset, arm, seed)
    took = path / "bench_wall_s.json"
    if not took.exists():
        cfg = load_config(overrides={"data.dataset": dataset, "evolution.seed": seed,
                                     **overrides, **settings})
        start = time.perf_counter()
        runner(arm, cfg, path)
        took.write_text(json.dumps(time.perf_counter() - start))
    return path, json.loads(took.read_text())


def results(path: Path) -> list[EvalResult]:
    """Every stored training of a run, in the order it ended."""
    store = EvaluationStore(path / "evaluations.db", read_only=True)
    try:
        return list(store.iter_results())
    finally:
        store.close()


def epochs_spent(path: Path, default_epochs: int) -> int:
    """Every epoch the run trained: its stored trainings (a promotion by what it adds) and final trainings."""
    search = epochs_trained(results(path), default_epochs)["epochs"]
    summary = json.loads((path / "best" / "summary.json").read_text())
    return search + sum(summary.get("final_epochs") or [])


def epochs_to_reach(path: Path, target: float, default_epochs: int) -> int | None:
    """The search epochs spent when a training first scored ``target`` validation error or better."""
    spent = 0
    for r in results(path):
        spent += result_epochs(r, default_epochs)
        if r.ok and r.kind == "search" and r.val_error <= target:
            return spent
    return None


def reach(found: Mapping[str, Mapping[str, list]], arm: str, base: str,
          default_epochs: int) -> tuple[list[int | None], list[int | None]]:
    """Per seed, the search epochs ``arm`` and ``base`` spent until a training first scored
    ``base``'s best validation error of that seed (None: never)."""
    targets = found[base]["val"]
    return ([epochs_to_reach(p, v, default_epochs) for p, v in zip(found[arm]["paths"], targets)],
            [epochs_to_reach(p, v, default_epochs) for p, v in zip(found[base]["paths"], targets)])


def reach_text(arm: str, base: str, reached: list[int | None], base_reached: list[int | None]) -> str:
    """``arm reaches base's best val error after 20 - 4 search epochs (base: 44 12 4)``."""
    shown = " ".join("-" if r is None else str(r) for r in reached)
    return (f"{arm:<12} reaches {base}'s best val error after {shown} search epochs "
            f"({base}: {' '.join('-' if r is None else str(r) for r in base_reached)})")


def compare(arms: Arms, dataset: str, seeds: list[int], overrides: Mapping[str, Any], out: Path,
            extra: Callable[[Path], Mapping[str, float]] | None = None,
            runners: Mapping[str, Runner] | None = None) -> dict[str, dict[str, list]]:
    """Run every arm for every seed, interleaved; print one line per run and per arm; the figures.

    ``runners`` makes the named arms' runs another way than a gnas search (a peer).
    """
    found: dict[str, dict[str, list]] = {a: {"val": [], "test": [], "epochs": [], "wall": [], "paths": []}
                                         for a in arms}
    for seed in seeds:
        for arm, settings in arms.items():  # interleaved
            path, wall = run(arm, settings, dataset, seed, overrides, out, (runners or {}).get(arm, search))
            summary = json.loads((path / "best" / "summary.json").read_text())
            cfg = load_config(overrides={"data.dataset": dataset, **overrides, **settings})
            tests = summary.get("test_scores") or [summary["test_score"]]
            spent = epochs_spent(path, cfg.train.epochs)
            f = found[arm]
            f["val"].append(summary["val_error"])
            f["test"] += tests
            f["epochs"].append(spent)
            f["wall"].append(wall)
            f["paths"].append(path)
            more = dict(extra(path)) if extra else {}
            for k, v in more.items():
                f.setdefault(k, []).append(v)
            shown = "".join(f"  {k} {v:.2f}" for k, v in more.items())
            print(f"seed {seed} {arm:<12} search val error {summary['val_error']:.4f}  "
                  f"delivered test {np.mean(tests):.2f}  epochs {spent}  {wall:.0f} s{shown}", flush=True)
    for arm in arms:
        f = found[arm]
        print(f"{arm:<12} best val error {np.mean(f['val']):.4f} ± {np.std(f['val']):.4f}  "
              f"test {np.mean(f['test']):.2f} ± {np.std(f['test']):.2f} (n={len(f['test'])})  "
              f"epochs {np.mean(f['epochs']):.0f}  wall {np.mean(f['wall']):.0f} s")
    return found


def test_gap(found: Mapping[str, Mapping[str, list]], arm: str, base: str) -> float:
    """``arm``'s delivered test minus ``base``'s, in points (means over seeds and final seeds)."""
    return float(np.mean(found[arm]["test"]) - np.mean(found[base]["test"]))
