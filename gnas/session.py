"""Start, resume and finish a search: everything between the CLI and the engine.

``start`` and ``resume`` share one path (:func:`execute`) so a resumed run is
wired exactly like a fresh one; only where the state comes from differs.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gnas.chaos import population as chaos
from gnas.competition.scoreboard import crossover_of
from gnas.competition.step import CompetitionStep
from gnas.config import RESUMABLE_KEYS, PlugsConfig, RunConfig, apply_overrides, flatten
from gnas.datasets import Dataset, load_for_run as load_data
from gnas.errors import ConfigError, RunDirError
from gnas.execution.local import (EVALUATORS, EvaluatorFactory, TaskEvaluator, check_parallel,
                                  given_evaluator, make_executor, uses_ray)
from gnas.genome.factory import make_space, needs_data
from gnas.genome.protocol import Space, has_stages, name_of
from gnas.genome.space import SearchSpace, str_to_bits
from gnas.inheritance.lineage import Inheritance
from gnas.inheritance.weights import WeightStore
from gnas.markov.recorder import MarkovRecorder
from gnas.pruning import step as pruning_step
from gnas.report.summary import parameters_text
from gnas.report.tensorboard import TensorBoardLogger
from gnas.runs.atomic import durability
from gnas.runs.data_digest import data_digest
from gnas.runs.directory import RunDir, resume_command
from gnas.runs import clock, heartbeat
from gnas.runs.atomic import read_json
from gnas.runs.faults import fault_point
from gnas.runs.interrupts import acknowledge_interrupt, interrupt_exit_code
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search import timing
from gnas.search.callbacks import Callback, CallbackList, ClockKeeper, FinalTrainingProgress, ProgressBar
from gnas.search.evaluation import SCHEDULES, Executor, Schedule
from gnas.search.fidelity import check_epoch_budget, epoch_line, run_epochs
from gnas.search.final import ExportShape, FinalExport, ObservedPick
from gnas.search.fitness import FitnessModel
from gnas.search.loop import InitialPopulation, Search
from gnas.search.step import Step
from gnas.search.strategies import NSGA2, STRATEGIES, Strategy, StrategyName, Unconditional
from gnas.search.variation import Variation
from gnas.tabular import checks as table_checks
from gnas.tabular.summary import pick_details, pick_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugs:
    """A user's own objects for a run, the Optuna shape (``create_study(sampler=...)``).

    Each one given replaces what the config would build: the search space (with
    its evaluator: a space object needs one), the evaluator, the strategy, the
    fidelity schedule. The run records their names (``[plugs]`` of config.toml),
    and a resume needs the same objects passed again.
    """

    space: Space | None = None
    evaluator: TaskEvaluator | None = None
    strategy: Strategy | None = None
    schedule: Schedule | None = None

    def names(self) -> dict[str, str]:
        """The recorded name of every object given."""
        return {f.name: name_of(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


NO_PLUGS = Plugs()


def with_plug_names(cfg: RunConfig, plugs: Plugs) -> RunConfig:
    """``cfg`` recording the names of the user's objects (``[plugs]``)."""
    if plugs.space is not None and plugs.evaluator is None:
        raise ConfigError("a space object needs its evaluator: pass evaluator= too (an object with "
                          "evaluate(task) -> EvalResult).")
    return dataclasses.replace(cfg, plugs=PlugsConfig(**plugs.names()))


def check_plugs(cfg: RunConfig, plugs: Plugs) -> None:
    """Refuse a resume whose objects are not the ones the run was made with."""
    given = plugs.names()
    for f in dataclasses.fields(PlugsConfig):
        was, now = getattr(cfg.plugs, f.name), given.get(f.name, "")
        if was == now:
            continue
        if not now:
            raise ConfigError(f"this run was made with the {f.name} object {was!r}: pass the same "
                              f"object again (gnas.resume(RUN, {f.name}=...)).")
        if not was:
            raise ConfigError(f"this run was made without a {f.name} object; resume it without "
                              f"{f.name}= ({now!r}).")
        raise ConfigError(f"this run was made with the {f.name} {was!r}, not {now!r}; pass the "
                          "same object again.")


def space_of(cfg: RunConfig, dataset: Dataset | None, plugs: Plugs) -> Space:
    """The run's search space: the user's object, else the one ``space.kind`` names."""
    return plugs.space if plugs.space is not None else make_space(cfg, dataset)


def data_of(cfg: RunConfig, plugs: Plugs) -> Dataset | None:
    """The run's data set; None for a space that needs none (a table, a formula)."""
    wanted = plugs.space.needs_data if plugs.space is not None else needs_data(cfg)
    return load_data(cfg) if wanted else None


def evaluator_of(cfg: RunConfig, plugs: Plugs) -> EvaluatorFactory:
    """The run's evaluator factory: the user's object, else the space's own evaluator."""
    if plugs.evaluator is not None:
        return given_evaluator(plugs.evaluator)
    return EVALUATORS[cfg.space.kind]


def default_run_dir(cfg: RunConfig) -> Path:
    name = Path(cfg.data.dataset).stem if cfg.data.dataset.endswith(".npz") else cfg.data.dataset
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def lambda_c_provider(cfg: RunConfig, dataset: Dataset | None, space: Space,
                      run_dir: RunDir) -> Callable[[], tuple[float, str]]:
    """Where the initial population's lambda_c comes from: flag, calibration or preset."""
    def provide() -> tuple[float, str]:
        if cfg.evolution.lambda_c >= 0:
            return cfg.evolution.lambda_c, "config"
        from gnas.chaos.calibration import calibrate_for_run
        from gnas.report.analysis import write_chaos_plot

        bound = timing.CALIBRATION_SHARE * cfg.evolution.max_seconds
        return calibrate_for_run(cfg, dataset, space, run_dir, plot=write_chaos_plot, max_seconds=bound)
    return provide


def start(cfg: RunConfig, run_dir_path: str | Path | None, out=sys.stdout,
          extra_callbacks: Sequence[Callback] = (), arrays: Path | None = None,
          progress: bool = True, plugs: Plugs = NO_PLUGS,
          given: Sequence[str] | None = None) -> int:
    """A new search: validate everything cheap first, then create the run directory.

    The run directory, the data set and the search space are all checked before
    anything is written, so a mistake costs seconds and leaves no half-made run.
    ``arrays`` is an ``.npz`` staged by :mod:`gnas.api`: the data set is read
    from it and it is moved to ``cfg.data.dataset``, inside the run directory,
    once that exists. ``plugs`` are the user's own objects (:class:`Plugs`). With a time
    budget the run is planned to fit it before the directory is made; ``given`` names the
    config keys the user set (the plan keeps them; None: those that differ from the defaults).
    """
    run_dir = RunDir(run_dir_path or default_run_dir(cfg))
    run_dir.check_new()
    cfg = absolute_data_paths(with_plug_names(cfg, plugs))
    dataset = data_of(cfg, plugs) if arrays is None else _staged(cfg, arrays)
    space = space_of(cfg, dataset, plugs)
    preflight(cfg, space, plugs)
    cfg, reserve_s = budgeted(cfg, dataset, space, set(given) if given is not None else None)
    # a Ray that cannot start leaves no half-made run
    executor = start_executor(cfg, dataset, evaluator_of(cfg, plugs))
    try:
        run_dir.create(cfg, dataset_digest(dataset))
        if arrays is not None:
            os.replace(arrays, cfg.data.dataset)
        with run_dir.locked():
            return execute(cfg, dataset, space, run_dir, None, executor, out, extra_callbacks,
                           progress, plugs, reserve_s)
    finally:
        executor.close()
        clock.stop()


def typical_genomes(cfg: RunConfig, dataset: Dataset, space: SearchSpace) -> list[str]:
    """Networks whose epoch a plan is measured on: one as generation 0 draws it (at the paper's
    lambda_c) and one with every stage on, as the search grows them."""
    import numpy as np

    from gnas.chaos.calibration import preset_for, run_sampler
    from gnas.genome.space import bits_to_str

    rng = np.random.default_rng(cfg.evolution.seed)
    first = run_sampler(cfg, space)(preset_for(dataset.kind), 2, rng)[0]
    return [bits_to_str(b) for b in [first, space.random_bits(rng)]]


def estimate(cfg: RunConfig, dataset: Dataset, space: SearchSpace) -> None:
    """A run without a budget on a large data set: say how long it will take, from a measured
    epoch, and suggest ``--time-budget`` when that is over an hour."""
    train_size = len(dataset.x_train) if not cfg.train.search_samples else cfg.train.search_samples
    if len(dataset.x_train) < timing.ESTIMATE_FROM or uses_ray(cfg):
        return
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    from gnas.backend.epoch_cost import measure

    ev = cfg.evolution
    total, text = timing.estimate_text(measure(cfg, dataset, typical_genomes(cfg, dataset, space)), train_size,
                                       ev.population * (ev.generations + 1) + ev.final_candidates * ev.final_seeds,
                                       cfg.train.epochs, cfg.final.max_epochs)
    (log.warning if total > timing.LONG_RUN_S else log.info)("%s", text)


def budgeted(cfg: RunConfig, dataset: Dataset, space: SearchSpace,
             given: set[str] | None) -> tuple[RunConfig, float]:
    """With ``evolution.max_seconds``: the run planned to fit it (``gnas.search.timing``) and the
    seconds kept for the final training; without, the run as it is and no reserve.

    The plan comes from one measured epoch of typical candidates on this machine;
    a budget too small for one network and a final model is refused here, before
    anything is written.
    """
    budget = cfg.evolution.max_seconds
    clock.start(budget)
    if dataset is None or not has_stages(space):
        return cfg, 0.0  # a table space: the clock bounds the run, nothing to plan
    if budget <= 0:
        estimate(cfg, dataset, space)
        return cfg, 0.0
    if budget < timing.MIN_BUDGET_S:
        raise ConfigError(f"--time-budget {timing.duration_text(budget)} is too short: loading, measuring "
                          f"and one network take longer; give --time-budget "
                          f"{timing.duration_text(timing.MIN_BUDGET_S)} or more.")
    if given is None:
        defaults = flatten(RunConfig().to_dict())
        given = {k for k, v in flatten(cfg.to_dict()).items() if defaults.get(k) != v}
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    from gnas.backend.epoch_cost import measure

    log.info("measuring one epoch of typical candidates to plan the run to fit %s ...",
             timing.duration_text(budget))
    cost = measure(cfg, dataset, typical_genomes(cfg, dataset, space))
    ev = cfg.evolution
    plan = timing.plan_run(budget, cost, len(dataset.x_train), clock.spent(), given, cfg.train.epochs,
                           ev.population, ev.generations, cfg.final.max_epochs,
                           scored=2 * len(dataset.x_val) + len(dataset.x_test))  # epoch end, then the report
    log.info("%s (epoch measured in %.0f s)", plan.text(), cost.seconds)
    clock.set_margin(plan.end_s)
    return apply_overrides(cfg, plan.overrides), plan.final_s + plan.end_s


def dataset_digest(dataset: Dataset | None) -> str | None:
    """The digest of the prepared splits that a resume must find again (gnas-run.json).

    None for a space that loads no data set (a table space: its data is the table).
    """
    if dataset is None:
        return None
    return data_digest((dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val,
                        dataset.x_test, dataset.y_test))


def _staged(cfg: RunConfig, path: Path) -> Dataset:
    """The data set of ``cfg`` read from ``path``, a staged file not yet moved to its place."""
    dataset = load_data(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=str(path))))
    return dataclasses.replace(dataset, name=cfg.data.dataset)


def preflight(cfg: RunConfig, space: Space, plugs: Plugs = NO_PLUGS) -> None:
    """Every check that can fail before a run starts: workers, GPUs, cluster, epoch budget,
    pruning masks, what the space supports, and its table."""
    check_parallel(cfg)
    check_epoch_budget(cfg)
    if not has_stages(space):
        check_stageless(cfg, space)
    if plugs.space is None and cfg.space.kind == "nb201":
        table_checks.check_run(cfg)
    pruning_step.validate(cfg, space)


#: What needs a space of stages: (is it asked for, what it is, how to leave it out).
STAGE_FEATURES: tuple[tuple[Callable[[RunConfig], bool], str, str], ...] = (
    (lambda c: c.evolution.competition, "layer-wise competition", "leave it off (--no-competition)"),
    (lambda c: c.prune.fraction > 0, "pruning (--prune)", "leave --prune out"),
    (lambda c: c.evolution.inherit != "none", "weight inheritance (--inherit)", "give --inherit none"),
    (lambda c: c.fidelity.schedule == "sha", "successive halving (--fidelity sha)",
     "give --fidelity full"),
    (lambda c: c.evolution.growth, "growth (evolution.growth)", "set evolution.growth=false"),
    (lambda c: c.evolution.init == "coe" and c.evolution.lambda_c < 0,
     "measuring lambda_c (the chaos probe on Keras networks)", "give --lambda-c or --init random"),
)


def check_stageless(cfg: RunConfig, space: Space) -> None:
    """Refuse, in one line, a feature that needs stages on a space without them."""
    for asked, feature, hint in STAGE_FEATURES:
        if asked(cfg):
            raise ConfigError(f"{feature} needs a space of stages (genetic_cnn); the space "
                              f"{space.name!r} has none: {hint}.")


def steps_of(cfg: RunConfig, space: SearchSpace, run_dir: RunDir) -> list[Step]:
    """The steps of a run, in the order they act on each generation.

    They belong to the paper's GA; the baselines (random, aging) run without them.
    """
    steps: list[Step] = []
    if cfg.evolution.strategy != StrategyName.GA:
        return steps
    if cfg.evolution.competition:
        steps.append(CompetitionStep(cfg, space))
    if cfg.prune.fraction > 0:
        steps.append(pruning_step.PruningStep(cfg, space, run_dir.path / "pruning" / "before", report=log.info))
    return steps


def callbacks_of(cfg: RunConfig, run_dir: RunDir, extra: Sequence[Callback] = (),
                 progress: bool = True, trains: bool = True) -> CallbackList:
    """Progress on stderr (unless ``progress`` is off), the Markov record and TensorBoard
    scalars of every generation.

    ``extra`` callbacks (an experiment's recorder, say) follow them. A space whose
    networks are not trained (``trains`` False: a table, a formula) writes no
    TensorBoard files: its candidates have no training to show, and a lookup
    run is over in a second.
    """
    return CallbackList([*([ProgressBar()] if progress else []), MarkovRecorder(run_dir),
                         *([TensorBoardLogger(run_dir, cfg.train.threads)] if trains else []),
                         *extra])


def build_search(cfg: RunConfig, dataset: Dataset | None, space: Space, run_dir: RunDir,
                 store: EvaluationStore, executor: Executor, state: SearchState | None,
                 extra_callbacks: Sequence[Callback] = (), progress: bool = True,
                 plugs: Plugs = NO_PLUGS) -> Search:
    """The one place a search is wired: its strategy, steps, callbacks and first population."""
    provide = lambda_c_provider(cfg, dataset, space, run_dir)

    def initial(rng) -> InitialPopulation:
        return chaos.initial_population(cfg, space, rng, provide)

    strategy = plugs.strategy if plugs.strategy is not None else strategy_of(cfg, space)
    schedule = plugs.schedule if plugs.schedule is not None else schedule_of(cfg, store, run_dir)
    # The steps belong to the paper's GA; a strategy of one's own runs without them.
    steps = steps_of(cfg, space, run_dir) if plugs.strategy is None else []
    return Search(cfg, space, run_dir, store, executor, strategy,
                  callbacks_of(cfg, run_dir, extra_callbacks, progress, space.trains), state,
                  initial=initial, steps=steps,
                  schedule=schedule, inheritance=inheritance_of(cfg, space, run_dir))


def inheritance_of(cfg: RunConfig, space: Space, run_dir: RunDir) -> Inheritance:
    """The run's weight inheritance (``evolution.inherit``), its weights kept in ``RUN/weights``."""
    ev = cfg.evolution
    store = WeightStore(run_dir.weights_dir, ev.inherit_max_mb * 2**20) if ev.inherit != "none" else None
    return Inheritance(ev.inherit, space, store)


def schedule_of(cfg: RunConfig, store: EvaluationStore, run_dir: RunDir) -> Schedule:
    """The run's fidelity schedule (``fidelity.schedule``): full fidelity or successive halving."""
    return SCHEDULES[cfg.fidelity.schedule](cfg, store, run_dir.path)


def strategy_of(cfg: RunConfig, space: Space) -> Strategy:
    """The run's strategy (``evolution.strategy``), with NSGA-II survival for several objectives.

    Stage-wise crossover goes with the layer-wise competition.
    """
    ev = cfg.evolution
    variation = Variation(space, indpb=ev.indpb, growth=ev.growth, grow_rate=ev.grow_rate,
                          crossover=crossover_of(space, ev.competition))
    several = len(ev.objectives.split(",")) > 1
    survival = NSGA2(FitnessModel(cfg, space).measure) if several else Unconditional()
    return STRATEGIES[StrategyName(ev.strategy).value](ev, variation, survival)


EXPORT_SHAPE = ExportShape(narrowed=pruning_step.narrowed,
                           architecture=pruning_step.exported_architecture,
                           description=pruning_step.exported_description)


def absolute_data_paths(cfg: RunConfig) -> RunConfig:
    """The config with an ``.npz`` data set and ``data_dir`` as absolute paths.

    config.toml records them so, and ``gnas resume`` works from any directory.
    """
    data = cfg.data
    dataset = str(Path(data.dataset).resolve()) if data.dataset.endswith(".npz") else data.dataset
    data_dir = str(Path(data.data_dir).resolve()) if data.data_dir else ""
    return dataclasses.replace(cfg, data=dataclasses.replace(data, dataset=dataset, data_dir=data_dir))


def resume(path: str | Path, overrides: dict[str, Any], out=sys.stdout,
           extra_callbacks: Sequence[Callback] = (), progress: bool = True,
           plugs: Plugs = NO_PLUGS) -> int:
    """Continue a run from its last checkpoint (optionally with more generations).

    Holds the run's lock throughout, so two processes never continue one run.
    Everything is validated (configuration, data set, checkpoint, evaluation
    database) before the first byte is written to the run directory.
    """
    run_dir = RunDir(path)
    run_dir.open_existing()
    previous_owner = read_json(run_dir.lock_path)  # a killed process' lock is taken over
    with run_dir.locked():
        try:
            # The run directory's own files first: they are cheap to check, and a
            # refusal then comes before the data set and TensorFlow are loaded.
            cfg = absolute_data_paths(resume_config(run_dir, overrides))
            check_plugs(cfg, plugs)
            state = run_dir.load_state(warn=_warn)
            check_generations(state, cfg)
            spent_s, reserve_s = check_time_budget(run_dir, cfg)
            EvaluationStore.check_file(run_dir.db_path)
            dataset = data_of(cfg, plugs)
            run_dir.check_data(dataset_digest(dataset))
            space = space_of(cfg, dataset, plugs)
            preflight(cfg, space, plugs)
            check_compatible(run_dir, state, space)
            EvaluationStore.check_file(run_dir.db_path, key_of=lambda genome: space.key(str_to_bits(genome)))
            # before the first byte is written
            executor = start_executor(cfg, dataset, evaluator_of(cfg, plugs))
        except KeyboardInterrupt as exc:
            return interrupted(run_dir, exc)
        try:
            run_dir.remove_stale_temp_files()
            run_dir.save_config(cfg)
            log.info("%s", resume_line(run_dir, state, cfg, previous_owner))
            clock.start(cfg.evolution.max_seconds, spent_s, clock.margin())
            return execute(cfg, dataset, space, run_dir, state, executor, out, extra_callbacks,
                           progress, plugs, reserve_s)
        finally:
            executor.close()
            clock.stop()


def resume_line(run_dir: RunDir, state: SearchState | None, cfg: RunConfig, owner: Any) -> str:
    """What a resume found, in one line: generation, evaluations kept, training states it continues
    from, and the stale lock of a killed process it took over."""
    from gnas.runs.store import EvaluationStore as Store
    from gnas.search.fidelity import CHECKPOINT_DIR

    store = Store(run_dir.db_path)
    try:
        kept, failed = store.count(), store.count("failed")
    finally:
        store.close()
    done = "no generation completed" if state is None or state.generation < 0 else \
        f"generation {state.generation} of {cfg.evolution.generations} completed"
    if state is not None and state.finished:
        done += " (search finished)"
    states = run_dir.path / CHECKPOINT_DIR
    continued = sum(1 for _ in states.rglob("*") if _.is_file()) if states.is_dir() else 0
    parts = [f"resuming {run_dir.path}: {done}", f"{kept} evaluations kept ({failed} failed)"]
    if continued:
        parts.append(f"{continued} saved training states to continue from")
    parts.append("trainings that were in flight start again")
    if isinstance(owner, dict) and owner.get("pid") not in (None, os.getpid()):
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(owner.get("since", 0) or 0)))
        parts.append(f"stale lock of process {owner.get('pid')} on {owner.get('host', '?')} "
                     f"(since {since}) cleared")
    return "; ".join(parts)


def check_time_budget(run_dir: RunDir, cfg: RunConfig) -> tuple[float, float]:
    """(seconds the run spent, seconds it keeps for its final training); refuses a budget a
    resume lowers below what was spent. A resume may raise the budget."""
    spent_s, reserve_s, margin_s = clock.load(run_dir.path)
    clock.set_margin(margin_s)
    budget = cfg.evolution.max_seconds
    if budget > 0 and budget <= spent_s:
        raise ConfigError(f"--time-budget {timing.duration_text(budget)} is below the "
                          f"{timing.duration_text(spent_s)} this run has already spent; give more "
                          f"than {timing.duration_text(spent_s)}.")
    return spent_s, reserve_s


def resume_config(run_dir: RunDir, overrides: dict[str, Any]) -> RunConfig:
    """The run's own configuration with the overrides a resume may apply.

    Raises:
        ConfigError: An override changes a key that defines the search.
    """
    original = run_dir.load_config()
    run_dir.check_config(original)
    cfg = run_dir.load_config(overrides)
    before, after = flatten(original.to_dict()), flatten(cfg.to_dict())
    for key in overrides:
        if not key.startswith(RESUMABLE_KEYS) and before.get(key) != after.get(key):
            raise ConfigError(f"{key} cannot change on resume (the run has {before.get(key)!r}, "
                              f"asked {after.get(key)!r}): it defines the search. Start a new run "
                              "with `gnas evolve` instead.")
    return cfg


def check_generations(state: SearchState | None, cfg: RunConfig) -> None:
    """Refuse fewer generations than the run has done: a search cannot be shortened."""
    if state is not None and state.generation > cfg.evolution.generations:
        raise ConfigError(f"--generations {cfg.evolution.generations} is below the {state.generation} "
                          f"generations this run has done; give {state.generation} or more.")


def check_compatible(run_dir: RunDir, state: SearchState | None, space: Space) -> None:
    """Refuse a checkpoint whose chromosomes do not fit this search space."""
    if state is not None and (state.genome_length != space.length or state.l != space.l):
        raise RunDirError(f"{run_dir.path}: its chromosomes have {state.genome_length} bits "
                          f"(l = {state.l}) but this search space has {space.length} (l = {space.l}); "
                          "resume with the run's own config.toml.")


def start_executor(cfg: RunConfig, dataset: Dataset | None,
                   factory: EvaluatorFactory = EVALUATORS["genetic_cnn"]) -> Executor:
    """The run's executor (a local Ray or a cluster when asked), with gnas' signal handlers kept.

    Started before anything is written to the run directory, so a Ray that
    cannot start or join fails the command with every file as it was.
    """
    handlers = _signal_handlers()
    executor = make_executor(cfg, dataset, factory)
    _restore_signal_handlers(handlers)
    return executor


def execute(cfg: RunConfig, dataset: Dataset | None, space: Space, run_dir: RunDir,
            state: SearchState | None, executor: Executor, out=sys.stdout,
            extra_callbacks: Sequence[Callback] = (), progress: bool = True,
            plugs: Plugs = NO_PLUGS, reserve_s: float = 0.0) -> int:
    """Run the loop on the caller's ``executor`` (the caller closes it); on Ctrl-C / SIGTERM
    keep what finished and say how to resume. ``reserve_s``: with a time budget, the
    seconds the search leaves for the final training."""
    if not space.trains:  # lookups: atomic writes without fsync (see gnas.runs.atomic.durability)
        with durability(False):
            return execute_lookups(cfg, dataset, space, run_dir, state, executor, out,
                                   extra_callbacks, progress, plugs)
    store = EvaluationStore(run_dir.db_path)
    budget = cfg.evolution.max_seconds > 0
    keeper = [ClockKeeper(run_dir.path, reserve_s)] if budget else []
    try:
        search = build_search(cfg, dataset, space, run_dir, store, executor, state,
                              [*keeper, *extra_callbacks], progress, plugs)
        search.reserve_s = reserve_s
        search.run()
        final_progress = FinalTrainingProgress(cfg.final.max_epochs, cfg.final.patience) if progress else None
        with heartbeat.listening(final_progress.on_beat if final_progress else (lambda beat: None)):
            summary = FinalExport(cfg, space, store, run_dir, executor, EXPORT_SHAPE,
                                  final_progress).finish(search.state)
        spent = run_epochs(store.iter_results(), cfg)
        failed = store.count("failed")
    except KeyboardInterrupt as exc:
        return interrupted(run_dir, exc)
    finally:
        store.close()
        if budget:
            clock.save(run_dir.path, reserve_s)
    print(format_summary({**summary, "trained": search.state.trained,
                          "reused": search.state.reused, "final": search.state.final,
                          "epochs_spent": spent, "pruning": cfg.prune.fraction > 0,
                          "failed": failed}, run_dir),
          file=out)
    return 0


def execute_lookups(cfg: RunConfig, dataset: Dataset | None, space: Space, run_dir: RunDir,
                    state: SearchState | None, executor: Executor, out=sys.stdout,
                    extra_callbacks: Sequence[Callback] = (), progress: bool = True,
                    plugs: Plugs = NO_PLUGS) -> int:
    """:func:`execute` for a space that trains nothing: its pick is the best evaluation observed."""
    store = EvaluationStore(run_dir.db_path, durable=False)
    try:
        search = build_search(cfg, dataset, space, run_dir, store, executor, state, extra_callbacks,
                              progress, plugs)
        search.run()
        summary = observed_pick(cfg, space, store, run_dir, plugs).finish(search.state)
    except KeyboardInterrupt as exc:
        return interrupted(run_dir, exc)
    finally:
        store.close()
    print(format_observed(summary, search.state, run_dir), file=out)
    return 0


def observed_pick(cfg: RunConfig, space: Space, store: EvaluationStore, run_dir: RunDir,
                  plugs: Plugs) -> ObservedPick:
    """The end of a search on a space that trains nothing; a NAS-Bench-201 pick gets its table's view."""
    details = None
    if plugs.space is None and cfg.space.kind == "nb201":
        def details(key, row, rows):
            return {"nb201": pick_details(cfg.data.dataset, key, row.metrics["val_acc"], rows)}
    return ObservedPick(cfg, space, store, run_dir, details)


def format_observed(summary: dict[str, Any], state: SearchState, run_dir: RunDir) -> str:
    """The summary of a search whose pick is its best evaluation observed."""
    nb = summary.get("nb201")
    return "\n".join([
        "",
        f"best architecture: {summary['description']}",
        f"validation error:  {summary['val_error']:.4f}  (best observed; no final training)",
        *(pick_lines(nb) if nb else []),
        f"networks:          {state.trained} evaluated, {state.reused} reused",
        f"run directory:     {run_dir.path}",
        f"resume / extend:   {resume_command(run_dir.path)} --generations N",
    ])


def interrupted(run_dir: RunDir, exc: KeyboardInterrupt) -> int:
    """Say what an interrupt kept and how to resume; returns 130 (Ctrl-C) or 143 (SIGTERM).

    In-flight evaluations are abandoned, not finished: a network half-way through
    training is dropped and trained again on resume (from the same seed, so the
    result is identical). Every evaluation that finished is already committed in
    evaluations.db and the last completed generation in state.json; nothing else
    is written here, so an interrupt can never leave a half-updated checkpoint.
    """
    acknowledge_interrupt()
    print(f"\ngnas: interrupted; every finished evaluation and the last completed generation are "
          f"saved in {run_dir.path} (in-flight evaluations were abandoned).\n"
          f"Resume with: {resume_command(run_dir.path)}", file=sys.stderr, flush=True)
    fault_point("interrupted")
    return interrupt_exit_code(exc)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in _STOP_SIGNALS}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    """Put back gnas' own handlers: ``ray.init`` replaces SIGTERM's with a bare ``sys.exit``."""
    for signum, handler in handlers.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


def _warn(message: str) -> None:
    """What a step or a checkpoint read has to say: a warning on the ``gnas`` logger."""
    log.warning(message)


def final_lines(final: list[dict[str, Any]]) -> list[str]:
    """The final candidates' validation error over their seeds, mean ± std, picked first."""
    return [f"{'final pick:' if i == 0 else 'candidate:':<19}val error {c['mean_val_error']:.4f} ± "
            f"{c['std_val_error']:.4f} over {len(c['val_errors'])} seeds  {c['key']}"
            for i, c in enumerate(final) if c.get("mean_val_error") is not None]


def test_seed_lines(summary: dict[str, Any]) -> list[str]:
    """The test score over the best network's seeds, when it was trained with more than one."""
    scores = summary.get("test_scores") or []
    if len(scores) < 2:
        return []
    return [f"over seeds:        {summary['test_score_mean']:.2f} ± {summary['test_score_std']:.2f} "
            f"test score over {len(scores)} trainings"]


def final_training_lines(summary: dict[str, Any]) -> list[str]:
    """The final training against the search's own: epochs and validation error."""
    final = summary.get("final_training")
    if not final:
        return []
    epochs = summary.get("final_epochs") or [final["epochs"]]
    return [f"final training:    val error {final['val_error']:.4f} after {final['epochs']} epochs "
            f"(best {final['best_epoch']}; search: {summary['val_error']:.4f} after "
            f"{final['search_epochs']}), {sum(epochs)} epochs over {len(epochs)} seed(s)"]


def headline(summary: dict[str, Any], run_dir: RunDir) -> str:
    """The one result to quote: the delivered model's test score, then the spread over its trainings."""
    line = (f"result:            test score {summary['test_score']:.2f} of the delivered model "
            f"({run_dir.best_dir / 'model.keras'})")
    scores = summary.get("test_scores") or []
    if len(scores) >= 2:
        line += (f"; spread over {len(scores)} trainings of its architecture: "
                 f"{summary['test_score_mean']:.2f} ± {summary['test_score_std']:.2f}")
    return line


def next_steps(run_dir: RunDir) -> list[str]:
    """What a user can do with a finished run, one command a line."""
    run = shlex.quote(str(run_dir.path))
    model = str(run_dir.best_dir / "model.keras")
    return [f"next:              gnas report {run}   (--plots: figures in {run}/plots)",
            f"                   gnas export {run} --format onnx --out model.onnx   (or tflite, keras)",
            f"                   tensorboard --logdir {shlex.quote(str(run_dir.tensorboard_dir))}",
            f"                   keras.saving.load_model({model!r}) predicts on raw inputs"]


def format_summary(summary: dict[str, Any], run_dir: RunDir) -> str:
    failed = summary.get("failed") or 0
    failures = f" ({failed} failed: reasons in `gnas report`)" if failed else ""
    return "\n".join([
        "",
        headline(summary, run_dir),
        f"best architecture: {summary['description']}",
        f"validation error:  {summary['val_error']:.4f}",
        *final_training_lines(summary),
        f"test score:        {summary['test_score']:.2f}  (100 x (1 - test error))",
        *test_seed_lines(summary),
        f"parameters:        {parameters_text(summary, summary.get('pruning', False))}",
        f"networks:          {summary['trained']} trained{failures}, {summary['reused']} reused",
        *([f"epochs:            {epoch_line(summary['epochs_spent'], summary.get('final_epochs') or ())}"]
          if "epochs_spent" in summary else []),
        *final_lines(summary.get("final") or []),
        f"run directory:     {run_dir.path}",
        f"resume / extend:   {resume_command(run_dir.path)} --generations N",
        *next_steps(run_dir),
    ])
