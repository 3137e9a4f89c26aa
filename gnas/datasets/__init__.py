"""Data sets for gnas: the Keras cache formats, read safely, prepared for search.

gnas reads the files that ``keras.datasets`` leaves in its cache
(``$KERAS_HOME/datasets`` or ``~/.keras/datasets``) or in ``--data-dir``, in
exactly those formats, without importing TensorFlow or Keras: a search worker
must be able to load its data in a process that has not initialised a deep
learning framework yet (and the CLI must start fast).

Every file is treated as user input. Nothing is ever unpickled with the
standard unpickler: CIFAR batches and the object arrays in ``imdb.npz`` and
``reuters.npz`` go through :func:`_restricted_unpickle`, which can only rebuild
NumPy arrays and plain containers. Archives are read in memory, never
extracted. Every problem with a file becomes a one-line :class:`DataError`.

Preparation is the same for every source so that scores are comparable:
images become float32 in [0, 1] with a channel axis, vectors are standardised
with training-split statistics, text is multi-hot over the 10,000 most frequent
words, labels are int64 and regression targets are standardised (the statistics
are kept on the :class:`Dataset` so errors can be reported in original units).

This module is the public interface; the work is done in its modules:
:mod:`~gnas.datasets.dataset` (the records), :mod:`~gnas.datasets.specs` (the
catalogue of built-in data sets), :mod:`~gnas.datasets.locate` (search paths and
the Keras cache layout), :mod:`~gnas.datasets.download` (the one-shot download),
:mod:`~gnas.datasets.formats` and :mod:`~gnas.datasets.readers` (file formats
and per-data-set readers), :mod:`~gnas.datasets.safe_pickle` (the restricted
unpickler), :mod:`~gnas.datasets.file_errors`, :mod:`~gnas.datasets.checks`,
:mod:`~gnas.datasets.prepare` (splits, scaling, standardisation, multi-hot),
:mod:`~gnas.datasets.held_out` (the fixed test split of a source without one) and
:mod:`~gnas.datasets.preprocessing` (the record an exported model is built from).
One's own data goes through :mod:`~gnas.datasets.user_data`, which picks
:mod:`~gnas.datasets.user_npz`, :mod:`~gnas.datasets.user_csv` or
:mod:`~gnas.datasets.image_folder`.
"""
from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from gnas.datasets.checks import _check_options, _check_raw
from gnas.datasets.dataset import Dataset, DatasetInfo
from gnas.datasets.download import _find_builtin
from gnas.datasets.file_errors import _read_guarded
from gnas.datasets.locate import _locate, _where, keras_cache_dir
from gnas.datasets.prepare import _prepare
from gnas.datasets.readers import _READERS, _read_digits, _sklearn_available
from gnas.datasets.specs import DATASETS, _SPECS, _canonical
from gnas.datasets.user_data import _read_user_source
from gnas.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from gnas.config import RunConfig

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "keras_cache_dir",
    "list_datasets",
    "load_dataset",
]


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    max_train_samples: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = True,
    task: str = "auto",
) -> Dataset:
    """Load a built-in data set or one's own data and prepare it for search.

    Args:
        name: One of :data:`DATASETS`; or the path of an ``.npz`` holding
            ``x_train, y_train, x_test, y_test`` (and optionally ``x_val,
            y_val``), of a CSV (``file.csv`` or ``file.csv:<target column>``)
            or of an image folder with one sub-folder per class.
        data_dir: Directory searched before the Keras cache.
        max_train_samples: Size of the training pool (training + validation),
            drawn at random; ``None`` uses every training sample. Small pools
            make quick searches possible on big data sets.
        val_fraction: Share of the pool held out for validation (at least one
            sample); fitness is measured there, never on the test split.
        seed: Seed of the pool and validation draw (the test split is fixed).
        download: Try once to fetch missing files into the Keras cache
            (never when ``GNAS_OFFLINE=1``).
        task: One's own data: ``"auto"`` infers classification or regression
            from the targets; ``"regression"`` keeps integral targets numbers.
            A built-in data set has its own task.

    Returns:
        The prepared :class:`Dataset`.

    Raises:
        DataError: Unknown name, missing or corrupt files, inconsistent arrays
            or bad options; the message is one line saying what to do.
    """
    _check_options(max_train_samples, val_fraction, seed)
    if data_dir and not pathlib.Path(data_dir).expanduser().is_dir():
        # Checked for every data set, digits included: a mistyped directory would
        # otherwise be recorded in config.toml and surprise the next resume.
        raise DataError(f"--data-dir {data_dir} is not a directory; give an existing directory "
                        "or leave --data-dir out.")
    key = _canonical(name)
    if key in _SPECS:
        spec = _SPECS[key]
        if task not in ("auto", spec.task):
            raise DataError(f"data.task = {task!r} does not apply to {spec.name}, a {spec.task}; "
                            "leave data.task at auto for a built-in data set.")
        if key == "digits":
            raw, source = _read_digits(), "digits"
        else:
            path = _find_builtin(spec, data_dir, download)
            raw, source = _read_guarded(spec.name, path, _READERS[key]), f"{spec.name} ({path})"
        _check_raw(raw, source, spec.task, spec.kind, spec.n_classes, spec.input_shape)
        meta = (spec.name, spec.task, spec.kind, spec.n_classes)
    else:
        raw, meta = _read_user_source(name, task)
    return _prepare(*meta, raw, max_train_samples, val_fraction, seed)


def load_for_run(cfg: "RunConfig") -> Dataset:
    """The data set a run's configuration names, split as every run of it splits it."""
    data = cfg.data
    return load_dataset(data.dataset, data_dir=data.data_dir or None,
                        max_train_samples=data.max_train_samples or None,
                        val_fraction=data.val_fraction, seed=0, task=data.task)


def list_datasets(data_dir: str | None = None) -> list[DatasetInfo]:
    """Describe every built-in data set and whether its files are at hand.

    Nothing is downloaded: this answers "what can I run offline right now".

    Args:
        data_dir: Directory searched before the Keras cache.

    Returns:
        One :class:`DatasetInfo` per name of :data:`DATASETS`, in that order.
    """
    infos = []
    for name in DATASETS:
        spec = _SPECS[name]
        if name == "digits":
            available, where = _sklearn_available(), "bundled with scikit-learn"
        else:
            path = _locate(spec, data_dir)
            available = path is not None
            where = str(path) if path else f"expected {spec.expected} in {_where(spec, data_dir)}"
        infos.append(DatasetInfo(
            spec.name, spec.task, spec.kind, spec.input_shape, spec.n_classes, available, where,
        ))
    return infos
