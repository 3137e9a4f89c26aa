"""``gnas export``: the best network of a run as a standalone ``.keras`` file.

The file holds only built-in Keras layers (pruning masks are baked into the
weights), so ``keras.models.load_model`` opens it in a process that has never
heard of gnas. A JSON sidecar next to it says what it is: architecture, genome,
test metrics, data set and the gnas version that made it.

Two ways to get the weights:

* by default, the search's own: ``best/model.keras`` when the run saved it, else
  the network retrained exactly as the search trained it (seeded per genome), so
  the exported model is the one the search scored;
* ``--retrain``: fresh initial weights trained on the training and validation
  splits together for ``--epochs`` epochs (the usual last step before deployment;
  its validation error is then no longer a held-out estimate). A pruned network
  keeps its pruned weights at zero throughout.

The Keras work (loading, retraining, scoring, saving) is in
``gnas.backend.export``, imported inside :func:`export_best` only.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any


from gnas.version import __version__

from gnas.datasets.preprocessing import preprocessing_record
from gnas.genome import memory
from gnas.pruning import masks
from gnas.pruning.step import exported_architecture, exported_description
from gnas.config import RunConfig
from gnas.errors import ConfigError, RunDirError
from gnas.pruning.records import PruneOptions
from gnas.records import NetworkSize, derive_seed
from gnas.runs.atomic import atomic_write_text, read_json
from gnas.runs.directory import RunDir, resume_command
from gnas.runs.paths import OUTPUTS, check_output
from gnas.genome.space import str_to_bits
from gnas.runs.store import EvaluationStore


#: Export formats and the suffix of their ``--out`` ("" for SavedModel, a directory).
FORMATS: dict[str, str] = {"keras": ".keras", "saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}
#: Fields every sidecar of ``gnas export`` has (how an earlier export is told from a user's file).
_SIDECAR_FIELDS = {"gnas_version", "key", "genome", "format", "metrics", "preprocessing"}
#: Packages a format needs beyond TensorFlow and Keras.
FORMAT_NEEDS: dict[str, tuple[str, ...]] = {"onnx": ("tf2onnx", "onnx")}


def check_format(fmt: str) -> None:
    """Refuse, before any work, a format that is unknown or whose packages are not installed."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: expected one of {', '.join(FORMATS)}.")
    missing = [name for name in FORMAT_NEEDS.get(fmt, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"--format {fmt} needs {' and '.join(missing)}; pip install {' '.join(missing)}, "
                          "or export with --format keras, saved_model or tflite.")


def default_out(run_dir: RunDir, fmt: str = "keras") -> Path:
    """Where an export goes without ``--out``: ``RUN/export/best.keras`` (``best_saved_model/``...)."""
    return run_dir.path / OUTPUTS / (f"best{FORMATS[fmt]}" if FORMATS[fmt] else "best_saved_model")


def sidecar_of(out: str | Path) -> Path:
    """The JSON sidecar of an exported model: its path with the suffix ``.json``."""
    path = Path(out)
    return (path if path.name not in ("", ".", "..") else Path(os.path.abspath(path))).with_suffix(".json")


def is_export_sidecar(path: Path) -> bool:
    """Whether ``path`` is a sidecar ``gnas export`` wrote (a regular JSON file with its fields)."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > 2**24:
        return False
    data = read_json(path)
    return isinstance(data, dict) and _SIDECAR_FIELDS <= set(data)


def check_out(out: str | Path, fmt: str = "keras", run_dir: RunDir | None = None) -> Path:
    """The output path, refused early when it is not a writable file (or folder) of ``fmt``.

    Nothing but an earlier export is ever replaced: inside the run directory the
    run's own files are refused (:func:`gnas.runs.paths.check_output`), and an
    existing model or sidecar is replaced only when its sidecar says ``gnas
    export`` wrote it. The sidecar is written first, so a kill never leaves an
    exported model without one (and a second export is not refused).
    """
    path, sidecar = Path(out), sidecar_of(out)
    if run_dir is not None:
        check_output(run_dir.path, path, "--out")
        check_output(run_dir.path, sidecar, "--out")
    suffix = FORMATS[fmt]
    ours = is_export_sidecar(sidecar)
    if fmt == "saved_model":
        if path.exists() and not (path.is_dir() and ours):
            raise ConfigError(f"--out {path} exists and is not a SavedModel of `gnas export`; a SavedModel "
                              "is a new directory, give a path that does not exist yet.")
    elif path.suffix != suffix:
        raise ConfigError(f"--out {path}: expected a file name ending in {suffix}, e.g. best{suffix}.")
    elif path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file name ending in {suffix}.")
    elif path.exists() and not ours:
        raise ConfigError(f"--out {path} exists and was not written by `gnas export` (no sidecar "
                          f"{sidecar.name} of its own); it was left as it is. Give a new file name.")
    if sidecar.exists() and not ours:
        raise ConfigError(f"--out {path}: its sidecar {sidecar} exists and was not written by `gnas "
                          "export`; it was left as it is. Give another --out name.")
    folder = path.parent
    if run_dir is not None and folder == run_dir.path / OUTPUTS and not folder.exists():
        folder = run_dir.path  # RUN/export/ is made when the model is saved
    if not folder.exists():
        raise ConfigError(f"--out {path}: directory {path.parent} does not exist; create it first.")
    try:  # a real write, not os.access: root passes access checks on a read-only mount
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write in {path.parent} ({exc.strerror}); choose "
                          "an --out in a writable directory and run the export again.") from None
    return path


def best_entry(run_dir: RunDir) -> tuple[RunConfig, dict[str, Any], dict[str, Any]]:
    """(config, hall-of-fame entry, best evaluation row metrics) of a run."""
    run_dir.open_existing()
    state = run_dir.load_state(warn=lambda m: None)
    if state is None or not state.hall_of_fame:
        raise RunDirError(f"{run_dir.path} has no evaluated network yet; let the search finish a "
                          f"generation (`{resume_command(run_dir.path)}`), then export.")
    cfg = run_dir.load_config()
    best = state.hall_of_fame[0]
    summary = run_dir.best_dir / "summary.json"
    if summary.exists() and not isinstance(read_json(summary), dict):
        raise RunDirError(f"{summary} is damaged; `{resume_command(run_dir.path)}` writes it again "
                          "(the run's evaluations are kept), then export.")
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        row = store.lookup(best["key"])
    finally:
        store.close()
    return cfg, best, row.to_dict() if row else {}


def export_best(run_dir: RunDir, out: str | Path | None = None, *, epochs: int | None = None,
                retrain: bool = False, fmt: str = "keras") -> dict[str, Any]:
    """Build, keep or retrain, test and save the run's best network; returns the sidecar.

    ``fmt`` is one of :data:`FORMATS`: a ``.keras`` file, a TensorFlow
    SavedModel directory, a ``.tflite`` (LiteRT) file or an ``.onnx`` file, each
    through Keras' own export, each taking raw inputs. Without ``out`` the model
    goes to :func:`default_out`, inside the run directory.
    """
    check_format(fmt)
    out = check_out(default_out(run_dir, fmt) if out is None else out, fmt, run_dir)
    cfg, best, row = best_entry(run_dir)
    if cfg.space.kind != "genetic_cnn" or cfg.plugs.space:
        from gnas.errors import ConfigError

        raise ConfigError(f"gnas export builds the Keras network of a genetic_cnn run; this run's "
                          f"pick is described in {run_dir.best_dir / 'architecture.json'}.")
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    from gnas.backend.evaluator import Evaluator
    from gnas.datasets import load_for_run as load_data

    dataset = load_data(cfg)
    evaluator = Evaluator(cfg, dataset, worker="export")
    seed = derive_seed(cfg.evolution.seed, best["key"])
    options = (row.get("metrics") or {}).get("final_options") or {}
    arch = evaluator.space.decode(str_to_bits(best["genome"]))
    from gnas.backend.export import retrained_model, save_model, search_model, test_metrics

    if retrain:
        n = epochs or cfg.train.epochs
        model = retrained_model(evaluator, best["genome"], seed, options, n)
        source = f"retrained on train+val for {n} epoch{'s' if n != 1 else ''}"
    else:
        model, source = search_model(run_dir, evaluator, best, seed, options)
    test = test_metrics(model, arch.task, dataset.x_test, dataset.y_test)
    sidecar = _sidecar(cfg, dataset, best, row, arch, options, test, source, model.count_params())
    sidecar["retrain_epochs"] = (epochs or cfg.train.epochs) if retrain else None
    sidecar["format"] = fmt
    sidecar["metrics"]["file_bytes"] = None
    out.parent.mkdir(exist_ok=True)  # RUN/export/ for the default --out
    # The sidecar first: a model on disk always has one, so a killed export can be redone.
    atomic_write_text(sidecar_of(out), json.dumps(sidecar, indent=1, allow_nan=False))
    save_model(model, out, sidecar["preprocessing"], fmt)
    sidecar["metrics"]["file_bytes"] = _bytes(out)
    atomic_write_text(sidecar_of(out), json.dumps(sidecar, indent=1, allow_nan=False))
    return sidecar


def _bytes(path: Path) -> int:
    """Size of a file, or of every file in a directory (a SavedModel)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _size(row: dict[str, Any], options: dict[str, Any], params: int, flops: int) -> dict[str, Any]:
    """Parameters and FLOPs before and after pruning, and what a weight mask leaves stored.

    ``params`` is the exported file's count; a network that was not pruned
    (no ``options``) has that many non-zero parameters.
    """
    size = NetworkSize.from_row(row, params, flops)
    nonzero = size.params if options else params
    opts = PruneOptions.from_dict(options)
    return {"params_nonzero": nonzero, "params_unpruned": size.params_unpruned,
            "flops": size.flops, "flops_unpruned": size.flops_unpruned,
            "pruned_fraction": 1.0 - nonzero / size.params_unpruned if size.params_unpruned else 0.0,
            "gene_fraction": size.gene_fraction,
            "storage": masks.storage_note(opts.mask, opts.nm, opts.sparsity,
                                          nonzero, params)}


def _sidecar(cfg: RunConfig, dataset, best, row, arch, options, test, source, params) -> dict[str, Any]:
    est = memory.estimate(arch)
    return {
        "gnas_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(), "key": best["key"], "genome": best["genome"],
        "fitness": best["fitness"], "description": exported_description(arch, row.get("metrics")),
        "architecture": exported_architecture(arch, row.get("metrics")),
        "pruning": options or None, "weights": source,
        # what the model does to raw inputs (and a regression's outputs) before and after the network
        "preprocessing": preprocessing_record(dataset),
        "metrics": {**test, "search_val_error": row.get("val_error"), "params": params,
                    **_size(row, options, params, est.flops),
                    "model_bytes": params * est.bytes_per_value},
        "dataset": {"name": cfg.data.dataset, "task": dataset.task, "input_shape": list(dataset.input_shape),
                    "n_classes": dataset.n_classes, "train_samples": int(len(dataset.y_train)),
                    "val_samples": int(len(dataset.y_val)), "test_samples": int(len(dataset.y_test)),
                    "target_mean": dataset.target_mean, "target_std": dataset.target_std},
    }
