"""The Python interface: search on in-memory arrays, resume, and open a finished run.

``gnas.evolve(x, y, validation_data=(x_val, y_val), run_dir=...)`` is
``gnas evolve`` on arrays: the same configuration, the same checks, the same
run directory. The arrays are written into the run directory as ``data.npz``
(NumPy's format, read back with ``allow_pickle=False``), and the run's
``config.toml`` names that file, so ``gnas resume RUN`` and ``gnas report RUN``
work on it from the command line too. Bad input raises the exception whose
one-line message the command line prints (:class:`gnas.errors.GnasError`
subclasses) and leaves nothing behind.

Settings are keyword arguments named for a configuration key: its own name
where it is unique across sections (``generations=3``, ``population=8``,
``epochs=2``, ``lambda_c=0.8``), or the whole dotted key in ``config``
(``config={"evolution.alpha": 0.2}``).

The parts of a run plug in as objects, the Optuna shape: ``space=``,
``evaluator=``, ``strategy=`` and ``schedule=`` take a name the configuration
knows (``space="nb201"``, ``strategy="aging"``) or one's own object
(:class:`gnas.session.Plugs`); ``gnas.resume`` then needs the same objects again.
``gnas.evolve(space="nb201", dataset="cifar10")`` searches NAS-Bench-201 with
no arrays at all.
"""
from __future__ import annotations

import dataclasses
import io
import os
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnas.config import STAGELESS_DEFAULTS, RunConfig, load_config
from gnas.datasets.held_out import split_off_test
from gnas.errors import ConfigError, DataError, RunDirError
from gnas.records import EvalResult
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore
from gnas.search.callbacks import Callback

#: Where in-memory arrays live inside a run directory.
DATA_FILE = "data.npz"


@dataclass(frozen=True)
class SearchResult:
    """What a run found: its directory, its summary and every evaluation.

    Attributes:
        run_dir: The run directory (resume it, report on it, export from it).
        summary: ``best/summary.json``: the final network, its validation and
            test scores, the run's counts.
        evaluations: One plain record per evaluation (key, genome, status,
            val_error, fitness, params, seconds, message, metrics, ...), in the
            order they finished; failures carry their reason in ``message``.
    """

    run_dir: Path
    summary: dict[str, Any]
    evaluations: list[dict[str, Any]]

    @property
    def best_model(self) -> Any:
        """The final network as a Keras model that takes raw inputs (``best/model.keras``)."""
        path = self.run_dir / "best" / "model.keras"
        if not path.is_file():
            raise RunDirError(f"{self.run_dir} has no best/model.keras yet; resume the run "
                              f"(gnas.resume({str(self.run_dir)!r})) to finish it.")
        from gnas.backend.preprocessing import load_deployable

        return load_deployable(path)

    @property
    def data(self) -> Any:
        """The run's data set, split as the run split it: ``x_train``, ``y_train``, ``x_val``,
        ``y_val``, ``x_test``, ``y_test`` (prepared as the networks saw them; the saved model
        takes raw inputs) and what describes them (``name``, ``task``, ``n_classes``)."""
        from gnas.datasets import load_for_run

        return load_for_run(RunDir(self.run_dir).load_config())

    def to_dataframe(self) -> Any:
        """The evaluations as a pandas DataFrame (pandas is optional: install it for this).

        Besides every field of :attr:`evaluations`: ``fitness`` (F, minimised, as the
        search ranked it), ``epochs`` and ``rung`` (what the network trained; a rung
        only under successive halving), ``architecture`` (readable), ``learning_rate``
        and ``momentum`` (decoded from the genome).
        """
        try:
            import pandas
        except ImportError:
            raise ConfigError("to_dataframe needs pandas; pip install pandas, or read "
                              "result.evaluations (a list of records).") from None
        return pandas.DataFrame.from_records(self.table())

    def table(self) -> list[dict[str, Any]]:
        """The rows of :meth:`to_dataframe`: every evaluation record with its fitness, epochs,
        rung, readable architecture, learning rate and momentum."""
        if not self.evaluations:
            return []
        derived = _derived_columns(self.run_dir, self.evaluations)
        return [{**record, **{name: values[i] for name, values in derived.items()}}
                for i, record in enumerate(self.evaluations)]


def evolve(x_train: Any = None, y_train: Any = None, *,
           validation_data: tuple[Any, Any] | None = None,
           test_data: tuple[Any, Any] | None = None, run_dir: str | Path | None = None,
           config: Mapping[str, Any] | None = None, preset: str | None = None,
           on_evaluation: Callable[[dict[str, Any]], None] | None = None,
           on_generation: Callable[[dict[str, Any]], None] | None = None,
           verbose: bool = False, dataset: str | None = None, space: Any = None,
           evaluator: Any = None, strategy: Any = None, schedule: Any = None,
           time_budget: float | str | None = None,
           **settings: Any) -> SearchResult:
    """Search architectures for in-memory arrays, as ``gnas evolve`` does for a data set.

    Args:
        x_train, y_train: Training inputs (``(N, features)`` vectors or
            ``(N, H, W[, C])`` images, numeric) and targets (integer classes,
            or floats for a regression), as raw as they come: the saved model
            takes the same raw inputs. Left out with ``dataset`` (a named data
            set, as ``gnas evolve --dataset``) or with a space that needs no data.
        validation_data: ``(x_val, y_val)``; fitness is measured there. Without
            it, ``data.val_fraction`` of the training arrays is held out.
        test_data: ``(x_test, y_test)``, touched only for the final report.
            Without it, a fixed, seeded 20 % of the training arrays is held out
            (stratified by class), before any validation split.
        run_dir: Where the run lives (default ``runs/arrays-<time>``); must be
            new or empty.
        config: Dotted configuration keys, e.g. ``{"evolution.alpha": 0.2}``.
        preset: ``paper``, ``default`` or ``tiny``.
        on_evaluation: Called with each evaluation's record as it finishes.
        on_generation: Called after each generation with ``{"generation",
            "best_fitness", "mean_fitness", "trained", "reused"}`` (fitness is
            minimised; a failed network's is left out of both).
        dataset: A named data set or file, as ``gnas evolve --dataset`` takes
            it (with ``space="nb201"``: cifar10, cifar100 or imagenet16).
        space, evaluator, strategy, schedule: A name the configuration knows
            (``space.kind``, ``evolution.strategy``, ``fidelity.schedule``) or
            one's own object; a space object comes with its evaluator object
            (``evaluate(task) -> EvalResult``).
        verbose: Print the progress bar, gnas' messages (the calibration, the
            plan) and the summary (stderr / stdout); in a notebook the bar is a widget.
        time_budget: Wall clock of the whole call, calibration and final training
            included: seconds, or ``"30m"``, ``"2h"``; alone, it plans the run to fit
            (``evolution.max_seconds``, ``--time-budget``).
        **settings: Configuration keys by their own name, e.g. ``generations=3``.

    Returns:
        The finished run's :class:`SearchResult`.

    Raises:
        ConfigError, DataError, RunDirError: Bad settings, arrays or directory;
            nothing is written then.
    """
    from gnas import session
    from gnas.runs import clock

    clock.mark_command_start()
    settings = {**settings, **_budget(time_budget)}
    plugs, named = _plugs(space=space, evaluator=evaluator, strategy=strategy, schedule=schedule)
    if dataset is not None:
        named["data.dataset"] = dataset
    stageless = plugs.space is not None and not _staged(plugs.space)
    cfg = _config(settings, config, preset, named, STAGELESS_DEFAULTS if stageless else None)
    given = None if preset else [*_overrides(settings), *dict(config or {}), *named]
    path = Path(run_dir) if run_dir is not None else _default_run_dir()
    RunDir(path).check_new()
    callbacks = _user_callbacks(on_evaluation, on_generation)
    if x_train is None and y_train is None:
        if dataset is None and not stageless and cfg.space.kind == "genetic_cnn":
            raise ConfigError("gnas.evolve needs data: give x_train, y_train (arrays) or dataset= "
                              "(a named data set), or a space that needs none (space='nb201').")
        with _messages(verbose):
            code = session.start(cfg, path, out=_stream(verbose), extra_callbacks=callbacks,
                                 progress=verbose, plugs=plugs, given=given)
        return _finished(path, code)
    if dataset is not None:
        raise ConfigError("give either arrays (x_train, y_train) or dataset=, not both.")
    arrays = _arrays(x_train, y_train, validation_data, test_data, cfg.data.task)
    from gnas.datasets.user_npz import check_arrays

    check_arrays(arrays, "gnas.evolve", cfg.data.task)  # named as passed, before data.npz exists
    cfg = _with_data(cfg, path.absolute() / DATA_FILE)
    with tempfile.TemporaryDirectory(prefix=".gnas-arrays-", dir=_existing_parent(path)) as tmp:
        staged = Path(tmp) / DATA_FILE
        _save_npz(staged, arrays)
        with _messages(verbose):
            code = session.start(cfg, path, out=_stream(verbose), arrays=staged,
                                 extra_callbacks=callbacks, progress=verbose, plugs=plugs,
                                 given=given)
    return _finished(path, code)


def _budget(time_budget: float | str | None) -> dict[str, float]:
    """``time_budget`` as the ``max_seconds`` setting (none when not given)."""
    if time_budget is None:
        return {}
    from gnas.search.timing import parse_duration

    try:
        return {"max_seconds": parse_duration(str(time_budget))}
    except ValueError as exc:
        raise ConfigError(f"time_budget: {exc}") from None


class _Messages:
    """With ``verbose``: gnas' log messages on stderr for the time of a call, where nothing shows
    them yet (a notebook; the command line has its own handler)."""

    def __init__(self, verbose: bool) -> None:
        import logging

        self.logger = logging.getLogger("gnas")
        self.handler = None
        if verbose and not self.logger.handlers:
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setFormatter(logging.Formatter("gnas: %(message)s"))

    def __enter__(self) -> None:
        import logging

        if self.handler is not None:
            self.level = self.logger.level
            self.logger.addHandler(self.handler)
            self.logger.setLevel(logging.INFO)

    def __exit__(self, *exc: Any) -> None:
        if self.handler is not None:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


_messages = _Messages


def resume(run_dir: str | Path, *, generations: int | None = None,
           on_evaluation: Callable[[dict[str, Any]], None] | None = None,
           on_generation: Callable[[dict[str, Any]], None] | None = None,
           verbose: bool = False, space: Any = None, evaluator: Any = None,
           strategy: Any = None, schedule: Any = None, time_budget: float | str | None = None,
           **settings: Any) -> SearchResult:
    """Continue or extend a run (``gnas resume``); only how long and where it runs may change.

    A run made with one's own objects (``space=``, ``evaluator=``, ``strategy=``,
    ``schedule=``) resumes with the same objects passed again.
    """
    from gnas.runs import clock

    clock.mark_command_start()
    settings = {**settings, **_budget(time_budget)}
    plugs, named = _plugs(space=space, evaluator=evaluator, strategy=strategy, schedule=schedule)
    overrides = {**_overrides({**settings, **({"generations": generations} if generations else {})}),
                 **named}
    from gnas import session

    with _messages(verbose):
        code = session.resume(run_dir, overrides, out=_stream(verbose),
                              extra_callbacks=_user_callbacks(on_evaluation, on_generation),
                              progress=verbose, plugs=plugs)
    return _finished(Path(run_dir), code)


#: The keyword of each part of a run -> the configuration key that names a built-in one.
PLUG_KEYS = {"space": "space.kind", "evaluator": "", "strategy": "evolution.strategy",
             "schedule": "fidelity.schedule"}


def _plugs(**given: Any) -> tuple[Any, dict[str, Any]]:
    """The user's objects as :class:`gnas.session.Plugs`, and the names given as config keys."""
    from gnas.session import Plugs

    objects, named = {}, {}
    for part, value in given.items():
        if value is None:
            continue
        if isinstance(value, str):
            if not PLUG_KEYS[part]:
                raise ConfigError(f"{part}= takes an object with evaluate(task) -> EvalResult, "
                                  f"not the name {value!r}.")
            named[PLUG_KEYS[part]] = value
        else:
            objects[part] = value
    return Plugs(**objects), named


def _staged(space: Any) -> bool:
    from gnas.genome.protocol import has_stages

    return has_stages(space)


def load(run_dir: str | Path) -> SearchResult:
    """Open a run directory (finished or not) read-only: its summary and every evaluation."""
    path = Path(run_dir)
    RunDir(path).open_existing()
    summary = read_json(path / "best" / "summary.json")
    store = EvaluationStore(path / "evaluations.db", read_only=True)
    try:
        evaluations = [_record(r) for r in store.iter_results()]
    finally:
        store.close()
    return SearchResult(path, summary if isinstance(summary, dict) else {}, evaluations)


# ------------------------------------------------------------------ settings
def _config(settings: Mapping[str, Any], config: Mapping[str, Any] | None,
            preset: str | None, named: Mapping[str, Any] | None = None,
            defaults: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults, preset, then the keyword settings, then ``config`` (which wins); ``named``
    are the parts and the data set given by name (``space="nb201"``, ``dataset=``)."""
    overrides = {**_overrides(settings), **dict(config or {})}
    if "data.dataset" in overrides:
        raise ConfigError("data.dataset is set by gnas.evolve from the arrays it is given; "
                          "leave it out (or give dataset= for a named data set).")
    return load_config(None, {**overrides, **dict(named or {})}, preset=preset, defaults=defaults)


def _overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword settings as dotted keys: a key's own name, where it names one key only."""
    keys = _short_names()
    out = {}
    for name, value in settings.items():
        if name not in keys:
            raise ConfigError(f"unknown setting {name}={value!r}: expected a configuration key's "
                              "own name (e.g. generations, epochs) or config={'section.key': value}.")
        if keys[name] is None:
            raise ConfigError(f"setting {name} names a key of several sections; give it in "
                              "config={'section.key': value}.")
        out[keys[name]] = value
    return out


def _short_names() -> dict[str, str | None]:
    """Each configuration key's own name -> its dotted key (``None`` when ambiguous)."""
    names: dict[str, str | None] = {}
    cfg = RunConfig()
    for sec in fields(cfg):
        for f in fields(getattr(cfg, sec.name)):
            names[f.name] = None if f.name in names else f"{sec.name}.{f.name}"
    return names


def _with_data(cfg: RunConfig, data_file: Path) -> RunConfig:
    """The configuration with the run's own ``data.npz`` as its data set."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=str(data_file),
                                                             data_dir=""))


def _default_run_dir() -> Path:
    import time

    return Path("runs") / f"arrays-{time.strftime('%Y%m%d-%H%M%S')}"


def _existing_parent(path: Path) -> Path:
    """The nearest existing folder at or above ``path`` (the staged file is moved from there)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


# -------------------------------------------------------------------- arrays
def _arrays(x: Any, y: Any, validation: tuple[Any, Any] | None,
            test: tuple[Any, Any] | None, task: str = "auto") -> dict[str, np.ndarray]:
    """The arrays of ``data.npz``: train, test (given or held out) and validation when given.

    A held-out test split is stratified by class unless the targets are
    floats or ``task`` says regression.
    """
    x, y = _pair(x, y, "x_train", "y_train")
    out: dict[str, np.ndarray] = {}
    if test is None:
        stratify = y.dtype.kind in "biu" and task != "regression"
        train, held = split_off_test(y, "x_train", stratify=stratify)
        out["x_test"], out["y_test"] = x[held], y[held]
        x, y = x[train], y[train]
    else:
        out["x_test"], out["y_test"] = _pair(*_two(test, "test_data"), "x_test", "y_test")
    out["x_train"], out["y_train"] = x, y
    if validation is not None:
        out["x_val"], out["y_val"] = _pair(*_two(validation, "validation_data"), "x_val", "y_val")
    return out


def _two(pair: Any, name: str) -> tuple[Any, Any]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise DataError(f"{name} must be a pair (x, y); received {type(pair).__name__}.")
    return pair[0], pair[1]


def _pair(x: Any, y: Any, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets as numeric arrays with one target per sample."""
    x, y = _array(x, x_name), _array(y, y_name)
    for name, a in ((x_name, x), (y_name, y)):
        if a.dtype.kind not in "biuf":
            raise DataError(f"{name} must be numeric (received dtype {a.dtype}); encode text or "
                            "categories as numbers first.")
    if x.ndim < 2:
        raise DataError(f"{x_name} has shape {x.shape}; expected (N, features) or (N, H, W[, C]).")
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise DataError(f"{y_name} has shape {y.shape}; expected one target per sample, (N,).")
    y = y.reshape(-1)
    if len(x) != len(y):
        raise DataError(f"{x_name} has {len(x)} samples but {y_name} {len(y)}; give one target per sample.")
    return x, y


def _array(value: Any, name: str) -> np.ndarray:
    """``value`` as an array; a ragged list (rows of different lengths) is a DataError."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise DataError(f"{name} is not a rectangular array of numbers (rows of different lengths "
                        "or shapes); give every sample the same shape.") from None


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays with NumPy's own format (no pickles: every array is numeric)."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------- callbacks
class _UserCallbacks(Callback):
    """A user's plain functions, called with plain records (never gnas' live objects)."""

    def __init__(self, on_evaluation: Callable[[dict[str, Any]], None] | None,
                 on_generation: Callable[[dict[str, Any]], None] | None) -> None:
        self.on_evaluation = on_evaluation
        self.on_generation = on_generation

    def on_evaluated(self, search, result, cached):
        if self.on_evaluation is not None:
            self.on_evaluation({**_record(result), "cached": bool(cached)})

    def on_generation_end(self, search, info):
        if self.on_generation is not None:
            fitness = [f for f in info.fitness if np.isfinite(f)]
            self.on_generation({"generation": int(info.generation),
                                "best_fitness": min(fitness) if fitness else float("inf"),
                                "mean_fitness": float(np.mean(fitness)) if fitness else float("inf"),
                                "trained": int(search.state.trained), "reused": int(search.state.reused)})


def _user_callbacks(on_evaluation, on_generation) -> Sequence[Callback]:
    if on_evaluation is None and on_generation is None:
        return ()
    return (_UserCallbacks(on_evaluation, on_generation),)


def _derived_columns(run_dir: Path, records: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per record: fitness, epochs, rung, architecture, learning rate and momentum, from the run's
    own configuration and search space."""
    from gnas.genome.factory import make_space
    from gnas.genome.space import str_to_bits
    from gnas.search.fitness import FitnessModel

    cfg = RunDir(run_dir).load_config()
    space = make_space(cfg, SearchResult(run_dir, {}, []).data)
    fitness = FitnessModel(cfg, space)
    store = EvaluationStore(run_dir / "evaluations.db", read_only=True)
    try:
        results = {(r.key, str(getattr(r.kind, "value", r.kind)), r.generation): r for r in store.iter_results()}
    finally:
        store.close()
    out: dict[str, list[Any]] = {k: [] for k in ("fitness", "epochs", "rung", "architecture",
                                                 "learning_rate", "momentum")}
    for record in records:
        result = results.get((record["key"], record["kind"], record["generation"]))
        metrics = record.get("metrics") or {}
        out["fitness"].append(fitness.fitness(result) if result is not None and result.ok else None)
        out["epochs"].append(metrics.get("epochs") or cfg.train.epochs)
        out["rung"].append(metrics.get("rung"))
        try:
            arch = space.decode(str_to_bits(record["genome"]))
        except Exception:  # noqa: BLE001 - a genome of another space: no description
            arch = None
        out["architecture"].append(arch.describe() if arch else None)
        out["learning_rate"].append(arch.learning_rate if arch else None)
        out["momentum"].append(arch.momentum if arch else None)
    return out


def _record(result: EvalResult) -> dict[str, Any]:
    """One evaluation as a plain record (enums as their values)."""
    out = result.to_dict()
    out["status"], out["kind"] = str(getattr(result.status, "value", result.status)), \
        str(getattr(result.kind, "value", result.kind))
    return out


def _stream(verbose: bool) -> Any:
    return sys.stdout if verbose else io.StringIO()


def _finished(path: Path, code: int) -> SearchResult:
    """The run's result, or the interrupt that stopped it (its checkpoint is kept)."""
    if code in (130, 143):
        raise KeyboardInterrupt(f"the search was interrupted; gnas.resume({str(path)!r}) continues it.")
    return load(path)
