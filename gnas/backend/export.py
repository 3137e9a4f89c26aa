"""The Keras side of ``gnas export``: the search's network, retrained weights, test scores, saving.

``gnas.report.export`` decides what to export and writes the sidecar; the model
itself is built, loaded, retrained, scored and saved here, the one package that
speaks Keras. A pruned network keeps its pruned weights at zero throughout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TYPE_CHECKING

import keras
import numpy as np

from gnas.backend.masking import apply_masks
from gnas.backend.preprocessing import network_of
from gnas.backend.saving import save_keras
from gnas.backend.trainer import StopOnNaN, compile_model
from gnas.errors import ConfigError, RunDirError
from gnas.genome.space import str_to_bits
from gnas.pruning.records import PruneOptions
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir

if TYPE_CHECKING:
    from gnas.backend.evaluator import Evaluator


def search_model(run_dir: RunDir, evaluator: Evaluator, best: dict[str, Any], seed: int,
                 options: dict[str, Any]) -> tuple[keras.Model, str]:
    """The search's trained network: best/model.keras when it is this genome's, else rebuilt."""
    saved = run_dir.best_dir / "model.keras"
    summary = run_dir.best_dir / "summary.json"
    previous = read_json(summary)
    if saved.is_file() and isinstance(previous, dict) and previous.get("key") == best["key"]:
        # weights only, a fresh optimiser; the network inside the raw-input wrapper
        model = network_of(keras.models.load_model(saved, compile=False))
        compile_model(model, evaluator.space.decode(str_to_bits(best["genome"])))
        return model, "search weights (best/model.keras)"
    model, _ = evaluator.final(best["genome"], seed, options)
    return model, "search weights (retrained as in the search)"


def retrained_model(evaluator: Evaluator, genome: str, seed: int, options: dict[str, Any],
                    epochs: int) -> keras.Model:
    """Fresh weights of the (pruned) network, trained on train + val for ``epochs``.

    A pruned network's structure and zeroed weights come from replaying its cuts
    (not from ``Evaluator.final``, which would first train it to convergence only
    for those weights to be drawn afresh here).
    """
    arch = evaluator.space.decode(str_to_bits(genome))
    if options:
        from gnas.backend.prune_eval import rebuild_pruned

        pruned, arch = rebuild_pruned(evaluator, genome, seed, PruneOptions.from_dict(options))
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


def zero_masks(model: keras.Model) -> dict[str, np.ndarray]:
    """Per layer, where its kernel is not exactly zero (pruned weights are exact zeros)."""
    masks = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            mask = np.asarray(kernel.numpy() != 0, dtype="float32")
            if not mask.all():
                masks[layer.name] = mask
    return masks


def mask_keeper(masks: dict[str, np.ndarray]) -> keras.callbacks.Callback:
    """A Keras callback that sets the pruned weights back to zero after every step."""
    class MaskKeeper(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            apply_masks(self.model, masks)

    return MaskKeeper()


def test_metrics(model: keras.Model, task: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Test error and score from the model's predictions (exact counts for classification)."""
    pred = model.predict(x, verbose=0)
    if task == "classification":
        correct = int((pred.argmax(axis=1) == np.asarray(y).reshape(-1)).sum())
        error = 1.0 - correct / len(y)
        return {"test_error": error, "test_score": 100.0 * (1.0 - error), "test_correct": correct,
                "test_samples": int(len(y))}
    error = float(np.abs(pred.reshape(-1) - np.asarray(y, dtype=float).reshape(-1)).mean())
    return {"test_error": error, "test_score": 100.0 * (1.0 - error), "test_samples": int(len(y))}


def save_model(model: keras.Model, out: Path, preprocessing: dict[str, Any], fmt: str = "keras") -> None:
    """Write the model atomically in ``fmt``, behind its data's ``preprocessing`` (raw inputs)."""
    try:
        save_keras(model, out, preprocessing, fmt)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the model ({exc.strerror}); choose a writable path.") from None
