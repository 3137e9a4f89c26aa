"""Start, resume and finish a search: everything between the CLI and the engine.

``start`` and ``resume`` share one path (:func:`execute`) so a resumed run is
wired exactly like a fresh one; only where the state comes from differs.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from gnas import chaos, extensions
from gnas.architecture import complexity
from gnas.callbacks import Callback, CallbackList, ProgressBar
from gnas.config import RunConfig
from gnas.datasets import Dataset, load_dataset
from gnas.engine import Search
from gnas.errors import RunDirError, Terminated
from gnas.parallel import Executor, make_executor
from gnas.results import derive_seed
from gnas.run_dir import RunDir, SearchState, atomic_write_text
from gnas.search_space import SearchSpace, str_to_bits
from gnas.space_factory import make_space
from gnas.store import EvaluationStore

# Callback factories other modules register (Markov recorder, TensorBoard, ...);
# each takes (cfg, run_dir) and returns a Callback or None.
CALLBACK_FACTORIES: list[Callable[[RunConfig, RunDir], Callback | None]] = []
# Step hooks (competition, pruning) registered the same way: (cfg, space) -> hook or None.
HOOK_FACTORIES: list[Callable[[RunConfig, SearchSpace], Any]] = []


def default_run_dir(cfg: RunConfig) -> Path:
    name = Path(cfg.data.dataset).stem if cfg.data.dataset.endswith(".npz") else cfg.data.dataset
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_data(cfg: RunConfig) -> Dataset:
    return load_dataset(cfg.data.dataset, data_dir=cfg.data.data_dir or None,
                        max_train_samples=cfg.data.max_train_samples or None,
                        val_fraction=cfg.data.val_fraction, seed=0)


def resume_command(run_dir: RunDir) -> str:
    return f"gnas resume {shlex.quote(str(run_dir.path))}"


def lambda_c_provider(cfg: RunConfig, dataset: Dataset, space: SearchSpace,
                      run_dir: RunDir) -> Callable[[], tuple[float, str]]:
    """Where the initial population's lambda_c comes from: flag, calibration or preset."""
    def provide() -> tuple[float, str]:
        if cfg.evolution.lambda_c >= 0:
            return cfg.evolution.lambda_c, "config"
        try:
            from gnas.calibration import calibrate_for_run
        except ImportError:
            return chaos.PAPER_LAMBDA_C[dataset.kind], "preset"
        return calibrate_for_run(cfg, dataset, space, run_dir)
    return provide


def start(cfg: RunConfig, run_dir_path: str | Path | None, out=sys.stdout) -> int:
    """A new search: validate everything cheap first, then create the run directory."""
    dataset = load_data(cfg)
    space = make_space(cfg, dataset)
    run_dir = RunDir(run_dir_path or default_run_dir(cfg))
    run_dir.create(cfg)
    return execute(cfg, dataset, space, run_dir, None, out)


def resume(path: str | Path, overrides: dict[str, Any], out=sys.stdout) -> int:
    """Continue a run from its last checkpoint (optionally with more generations)."""
    run_dir = RunDir(path)
    run_dir.open_existing()
    cfg = run_dir.load_config(overrides)
    dataset = load_data(cfg)
    space = make_space(cfg, dataset)
    state = run_dir.load_state(warn=lambda m: print(f"gnas: {m}", file=sys.stderr))
    if state is not None and (state.genome_length != space.length or state.l != space.l):
        raise RunDirError(f"{run_dir.path}: its chromosomes have {state.genome_length} bits but this "
                          f"search space has {space.length}; resume with the run's own config.toml.")
    if state is not None and state.generation >= cfg.evolution.generations:
        state.finished = True
    run_dir.save_config(cfg)
    return execute(cfg, dataset, space, run_dir, state, out)


def execute(cfg: RunConfig, dataset: Dataset, space: SearchSpace, run_dir: RunDir,
            state: SearchState | None, out=sys.stdout) -> int:
    """Run the loop; on Ctrl-C keep what finished and say how to resume."""
    extensions.load()
    store = EvaluationStore(run_dir.db_path)
    executor = make_executor(cfg, dataset)
    callbacks = CallbackList([ProgressBar()] + [cb for f in CALLBACK_FACTORIES
                                                if (cb := f(cfg, run_dir)) is not None])
    hooks = [h for f in HOOK_FACTORIES if (h := f(cfg, space)) is not None]
    try:
        search = Search(cfg, space, run_dir, store, executor, callbacks, state,
                        lambda_c=lambda_c_provider(cfg, dataset, space, run_dir), hooks=hooks)
        search.run()
        summary = finish(search, executor)
    except KeyboardInterrupt as exc:
        print(f"\ngnas: interrupted; finished evaluations and the last generation are saved in "
              f"{run_dir.path}.\nResume with: {resume_command(run_dir)}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        executor.close()
        store.close()
    print(format_summary(summary, run_dir), file=out)
    return 0


def finish(search: Search, executor: Executor) -> dict[str, Any]:
    """Retrain the best network, score it on the test split once, save best/."""
    best = search.state.hall_of_fame[0]
    run_dir = search.run_dir
    summary_path = run_dir.best_dir / "summary.json"
    if summary_path.is_file():
        previous = json.loads(summary_path.read_text())
        if previous.get("key") == best["key"] and (run_dir.best_dir / "model.keras").is_file():
            return previous
    arch = search.space.decode(str_to_bits(best["genome"]))
    row = search.store.lookup(best["key"])
    params, flops = (row.params, row.flops) if row and row.ok else complexity(arch)
    options = (row.metrics.get("final_options") if row else None) or {}
    metrics = executor.final(best["genome"], derive_seed(search.cfg.evolution.seed, best["key"]),
                             run_dir.best_dir, options)
    summary = {"key": best["key"], "genome": best["genome"], "fitness": best["fitness"],
               "val_error": row.val_error if row else metrics["val_error"],
               "test_error": metrics["test_error"], "test_score": metrics["test_score"],
               "params": params, "flops": flops,
               "pruned_fraction": row.pruned_fraction if row else 0.0,
               "architecture": arch.to_dict(), "description": arch.describe(),
               "dataset": search.cfg.data.dataset}
    atomic_write_text(run_dir.best_dir / "architecture.json", json.dumps(arch.to_dict(), indent=1))
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict[str, Any], run_dir: RunDir) -> str:
    return "\n".join([
        "",
        f"best architecture: {summary['description']}",
        f"validation error:  {summary['val_error']:.4f}",
        f"test score:        {summary['test_score']:.2f}  (100 x (1 - test error))",
        f"parameters:        {summary['params']:,}",
        f"run directory:     {run_dir.path}",
        f"resume / extend:   {resume_command(run_dir)} --generations N",
    ])
