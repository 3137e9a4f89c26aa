"""Weight masks on a Keras model: chosen per kernel, applied to weights and gradients.

Masks live outside the model: :func:`masked_fit` multiplies every gradient by its
mask before the SGD step and the kernel by its mask after it, so a masked weight
starts at zero, receives no update and no momentum, and stays exactly zero. The
model itself holds built-in layers only, so the exported ``.keras`` file loads
with plain ``keras.models.load_model`` and no custom objects.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from gnas.pruning import masks as masks_lib
from gnas.errors import EvaluationFailed

Masks = dict[str, np.ndarray]


def kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every Dense and Conv2D layer (stage nodes and the head), in model order."""
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]


def _reads_network_input(model: keras.Model, layer: keras.layers.Layer) -> bool:
    """True when the layer's input is the network input (after flattening)."""
    starts = {id(t) for t in model.inputs}
    if "flatten" in [lay.name for lay in model.layers]:
        starts.add(id(model.get_layer("flatten").output))
    return id(layer.input) in starts


def compute_masks(model: keras.Model, kind: str, sparsity: float, nm: tuple[int, int] = (2, 4),
                  grads: dict[str, np.ndarray] | None = None, skip: tuple[str, ...] = ()) -> Masks:
    """A mask per kernel from magnitude, or from saliency when ``grads`` is given.

    For N:M, a layer that reads the raw network input keeps all its weights when
    M does not divide its input channels (the data fixes that number, e.g. one
    grey channel); every other layer must hold the pattern (MaskError otherwise).
    Layers named in ``skip`` keep every weight (the head under a gradual column
    mask: its columns are the outputs, which no compaction can remove).
    """
    out: Masks = {}
    for layer in kernel_layers(model):
        if layer.name in skip:
            continue
        kernel = layer.kernel.numpy()
        if kind == "nm" and kernel.shape[-2] % nm[1] and _reads_network_input(model, layer):
            continue
        scores = masks_lib.importance(kernel, None if grads is None else grads.get(layer.name))
        out[layer.name] = masks_lib.make_mask(kind, scores, sparsity, nm, layer=layer.name)
    return out


def apply_masks(model: keras.Model, masks: Masks) -> None:
    """Zero the masked weights in place."""
    for name, mask in masks.items():
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel.numpy() * mask)


def masked_fit(model: keras.Model, x: np.ndarray, y: np.ndarray, masks: Masks | None, *,
               task: str, learning_rate: float, momentum: float, steps: int, batch_size: int,
               seed: int) -> float:
    """``steps`` SGD + momentum steps with masked gradients and weights; the last loss.

    Batches follow a permutation drawn from ``seed``, so the same call gives the
    same weights. Raises EvaluationFailed when the loss is not finite.
    """
    masks = masks or {}
    opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    loss_fn = _loss(task)
    order = np.random.default_rng(seed).permutation(len(x))
    variables = model.trainable_variables
    masked = {id(model.get_layer(n).kernel): tf.constant(m) for n, m in masks.items()}
    apply_masks(model, masks)
    loss = math.nan
    for step in range(steps):
        idx = np.take(order, np.arange(step * batch_size, (step + 1) * batch_size), mode="wrap")
        with tf.GradientTape() as tape:
            loss_t = loss_fn(y[idx], model(x[idx], training=True))
        grads = tape.gradient(loss_t, variables)
        grads = [g * masked[id(v)] if id(v) in masked and g is not None else g
                 for g, v in zip(grads, variables)]
        opt.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        for v in variables:
            if id(v) in masked:
                v.assign(v * masked[id(v)])
        loss = float(loss_t)
        if not math.isfinite(loss):
            raise EvaluationFailed(f"fine-tuning diverged (loss {loss}) at learning rate {learning_rate:.3g}")
    return loss


def _loss(task: str):
    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.MeanSquaredError()


def parameter_counts(model: keras.Model, masks: Masks | None = None) -> tuple[int, int]:
    """(total parameters, parameters left once masked weights are removed)."""
    total = int(model.count_params())
    removed = sum(int(m.size - np.count_nonzero(m)) for m in (masks or {}).values())
    return total, total - removed
