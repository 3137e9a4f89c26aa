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

TensorFlow is imported inside the functions only.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gnas import __version__

from gnas.genome import memory
from gnas.config import RunConfig
from gnas.errors import ConfigError, RunDirError
from gnas.records import derive_seed
from gnas.runs.atomic import atomic_write_text, read_json
from gnas.runs.directory import RunDir
from gnas.genome.space import str_to_bits
from gnas.runs.store import EvaluationStore


def check_out(out: str | Path) -> Path:
    """The output path, refused early when it is not a writable ``.keras`` file."""
    path = Path(out)
    if path.suffix != ".keras":
        raise ConfigError(f"--out {path}: expected a file name ending in .keras, e.g. best.keras.")
    if path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file name ending in .keras.")
    if not path.parent.exists():
        raise ConfigError(f"--out {path}: directory {path.parent} does not exist; create it first.")
    try:  # a real write, not os.access: root passes access checks on a read-only mount
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".probe")
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
                          f"generation (`gnas resume {run_dir.path}`), then export.")
    cfg = run_dir.load_config()
    best = state.hall_of_fame[0]
    summary = run_dir.best_dir / "summary.json"
    if summary.exists() and not isinstance(read_json(summary), dict):
        raise RunDirError(f"{summary} is damaged; `gnas resume {run_dir.path}` writes it again "
                          "(the run's evaluations are kept), then export.")
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        row = store.lookup(best["key"])
    finally:
        store.close()
    return cfg, best, row.to_dict() if row else {}


def export_best(run_dir: RunDir, out: str | Path, *, epochs: int | None = None,
                retrain: bool = False) -> dict[str, Any]:
    """Build, keep or retrain, test and save the run's best network; returns the sidecar."""
    out = check_out(out)
    cfg, best, row = best_entry(run_dir)
    from gnas.backend import runtime

    runtime.configure(cfg.train.threads)
    from gnas.backend.evaluator import Evaluator
    from gnas.datasets import load_for_run as load_data

    dataset = load_data(cfg)
    evaluator = Evaluator(cfg, dataset, worker="export")
    seed = derive_seed(cfg.evolution.seed, best["key"])
    options = (row.get("metrics") or {}).get("final_options") or {}
    arch = evaluator.space.decode(str_to_bits(best["genome"]))
    if retrain:
        n = epochs or cfg.train.epochs
        model = retrained_model(evaluator, best["genome"], seed, options, n)
        source = f"retrained on train+val for {n} epoch{'s' if n != 1 else ''}"
    else:
        model, source = search_model(run_dir, evaluator, best, seed, options)
    test = test_metrics(model, arch.task, dataset.x_test, dataset.y_test)
    sidecar = _sidecar(cfg, dataset, best, row, arch, options, test, source, model.count_params())
    sidecar["retrain_epochs"] = (epochs or cfg.train.epochs) if retrain else None
    _save(model, out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1, allow_nan=False))
    return sidecar


def search_model(run_dir: RunDir, evaluator, best: dict[str, Any], seed: int,
                 options: dict[str, Any]):
    """The search's trained network: best/model.keras when it is this genome's, else rebuilt."""
    import keras

    from gnas.backend.trainer import compile_model

    saved = run_dir.best_dir / "model.keras"
    summary = run_dir.best_dir / "summary.json"
    previous = read_json(summary)
    if saved.is_file() and isinstance(previous, dict) and previous.get("key") == best["key"]:
        model = keras.models.load_model(saved, compile=False)  # weights only; a fresh optimiser
        compile_model(model, evaluator.space.decode(str_to_bits(best["genome"])))
        return model, "search weights (best/model.keras)"
    model, _ = evaluator.final(best["genome"], seed, options)
    return model, "search weights (retrained as in the search)"


def retrained_model(evaluator, genome: str, seed: int, options: dict[str, Any], epochs: int):
    """Fresh weights of the (pruned) network, trained on train + val for ``epochs``."""
    import keras

    from gnas.backend.trainer import StopOnNaN, compile_model

    arch = evaluator.space.decode(str_to_bits(genome))
    if options:  # the pruned structure and its zeroed weights come from the rebuilt network
        pruned, _ = evaluator.final(genome, seed, options)
        masks = zero_masks(pruned)
        keras.utils.set_random_seed(seed)
        model = keras.models.clone_model(pruned)
    else:
        masks = {}
        model = evaluator.build(arch, seed)
    apply_masks(model, masks)
    compile_model(model, arch)
    data = evaluator.data
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    callbacks = [StopOnNaN()] + ([mask_keeper(masks)] if masks else [])
    history = model.fit(x, y, batch_size=evaluator.batch_size(arch), epochs=epochs, verbose=0,
                        shuffle=True, callbacks=callbacks)
    loss = float(history.history["loss"][-1])
    if not np.isfinite(loss):
        raise RunDirError(f"retraining diverged (loss {loss}); export without --retrain to keep "
                          "the search weights, or retrain with fewer --epochs.")
    return model


def zero_masks(model) -> dict[str, np.ndarray]:
    """Per layer, where its kernel is not exactly zero (pruned weights are exact zeros)."""
    masks = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            mask = np.asarray(kernel.numpy() != 0, dtype="float32")
            if not mask.all():
                masks[layer.name] = mask
    return masks


def apply_masks(model, masks: dict[str, np.ndarray]) -> None:
    for name, mask in masks.items():
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel.numpy() * mask)


def mask_keeper(masks: dict[str, np.ndarray]):
    """A Keras callback that sets the pruned weights back to zero after every step."""
    import keras

    class MaskKeeper(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            apply_masks(self.model, masks)

    return MaskKeeper()


def test_metrics(model, task: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Test error and score from the model's predictions (exact counts for classification)."""
    pred = model.predict(x, verbose=0)
    if task == "classification":
        correct = int((pred.argmax(axis=1) == np.asarray(y).reshape(-1)).sum())
        error = 1.0 - correct / len(y)
        return {"test_error": error, "test_score": 100.0 * (1.0 - error), "test_correct": correct,
                "test_samples": int(len(y))}
    error = float(np.abs(pred.reshape(-1) - np.asarray(y, dtype=float).reshape(-1)).mean())
    return {"test_error": error, "test_score": 100.0 * (1.0 - error), "test_samples": int(len(y))}


def _sidecar(cfg: RunConfig, dataset, best, row, arch, options, test, source, params) -> dict[str, Any]:
    est = memory.estimate(arch)
    return {
        "gnas_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(), "key": best["key"], "genome": best["genome"],
        "fitness": best["fitness"], "architecture": arch.to_dict(), "description": arch.describe(),
        "pruning": options or None, "weights": source,
        "metrics": {**test, "search_val_error": row.get("val_error"), "params": params,
                    "flops": row.get("flops") or est.flops,
                    "pruned_fraction": row.get("pruned_fraction", 0.0),
                    "model_bytes": params * est.bytes_per_value},
        "dataset": {"name": cfg.data.dataset, "task": dataset.task, "input_shape": list(dataset.input_shape),
                    "n_classes": dataset.n_classes, "test_samples": int(len(dataset.y_test)),
                    "target_mean": dataset.target_mean, "target_std": dataset.target_std},
    }


def _save(model, out: Path) -> None:
    """Write the .keras file atomically (a temporary name in the same folder, then rename)."""
    tmp = out.with_name(f".{out.stem}.tmp.keras")
    try:
        model.save(tmp)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"--out {out}: cannot write the model ({exc.strerror}); choose a writable path.") from None
