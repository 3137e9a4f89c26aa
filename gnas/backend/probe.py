"""Perturbation growth through freshly initialised networks (the chaos probe).

The edge of chaos of a search space is where a tiny perturbation of the input
neither dies out nor blows up on its way through a network with its initial
weights: the maximal Lyapunov exponent, measured as the mean log growth of the
perturbation per layer, is zero there (Derrida damage spreading). Networks are
built by the real builder (:func:`gnas.backend.builder.build_model`), with the
search's weight initialisation ``VarianceScaling(scale=weight_scale,
mode="fan_in")``, so the probe sees exactly the networks the search trains.

Growth is measured on the mean square per unit of the perturbation, not on its
norm, so layers of different widths compare; the exponent of a network is half
the log of the end-to-end gain (at the input of the classifier head) divided by
the number of node layers on its longest path.

The theory check uses deep *linear* networks with masked weights: the builder's
network with every ReLU replaced by the identity, and each kernel entry kept
with probability ``mask_rate``. A unit then sums ``mask_rate * fan_in`` inputs of
variance ``weight_scale / fan_in``, so the perturbation grows by
``0.5 * log(mask_rate * weight_scale)`` per layer and the edge of chaos lies at
``mask_rate = 1 / weight_scale``.
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import layers

from gnas.genome.architecture import Architecture, StageArch
from gnas.backend.builder import build_model, weight_initializer

PERTURBATION = 1e-3   # relative size of the input perturbation: small enough to stay linear
GAIN_FLOOR = 1e-30    # a perturbation that vanished entirely (all weights masked)


def stage_depth(stage: StageArch) -> int:
    """Node layers on the longest path through one stage's DAG."""
    depth = [1] * stage.nodes
    for node in range(stage.nodes):  # edges go i -> j with i < j: index order is topological
        preds = stage.predecessors(node)
        if preds:
            depth[node] = 1 + max(depth[p] for p in preds)
    return max(depth)


def network_depth(arch: Architecture) -> int:
    """Node layers on the longest input-to-head path of the network."""
    return sum(stage_depth(s) for s in arch.stages)


def chain_architecture(depth: int, width: int, input_shape: tuple[int, ...],
                       n_outputs: int = 10, nodes_per_stage: int = 4) -> Architecture:
    """A dense network that is one chain of ``depth`` nodes of ``width`` units.

    Stages hold up to ``nodes_per_stage`` nodes wired 0 -> 1 -> 2 ...; the theory
    check builds it like any searched network.
    """
    stages, left, index = [], depth, 0
    while left > 0:
        k = min(nodes_per_stage, left)
        edges = tuple((i, i + 1) for i in range(k - 1))
        stages.append(StageArch(index=index, nodes=k, edges=edges, width=width))
        left -= k
        index += 1
    return Architecture(family="dense", input_shape=tuple(input_shape), n_outputs=n_outputs,
                        task="classification", stages=tuple(stages), learning_rate=0.01,
                        momentum=0.0)


def linearised(model: keras.Model) -> keras.Model:
    """The same network with every ReLU replaced by the identity, weights copied."""
    def swap(layer):
        if isinstance(layer, layers.ReLU):
            return layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=swap)
    clone.set_weights(model.get_weights())
    return clone


def mask_kernels(model: keras.Model, rate: float, rng: np.random.Generator) -> None:
    """Keep each kernel entry of the stage nodes with probability ``rate`` (in place)."""
    for layer in model.layers:
        if layer.name.startswith("s") and hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            layer.kernel.assign(kernel * (rng.random(kernel.shape) < rate))


def feature_model(model: keras.Model) -> keras.Model:
    """A model whose output is the input of the classifier head (the deepest node state)."""
    return keras.Model(model.input, model.get_layer("head").input)


def perturbation_exponent(features: keras.Model, x: np.ndarray, depth: int,
                          rng: np.random.Generator, eps: float = PERTURBATION) -> float:
    """Mean over the batch of the log growth of a tiny perturbation, per layer.

    Each sample gets its own random direction scaled to ``eps`` times the batch's
    root mean square, so the exponent does not depend on the scale of the data.
    """
    return perturbation_exponents(features, [x], depth, rng, eps)[0]


def perturbation_exponents(features: keras.Model, batches: Sequence[np.ndarray], depth: int,
                           rng: np.random.Generator, eps: float = PERTURBATION) -> list[float]:
    """:func:`perturbation_exponent` of each batch, all pushed through the network at once.

    The perturbations are drawn batch after batch from ``rng``, as one call per
    batch would draw them, and the network sees every clean and perturbed input
    in a single forward pass: with its initial weights and inference-mode
    normalisation a sample's features do not depend on the others, and one call
    costs far less than one per batch (the sweep makes thousands).
    """
    xs = [np.asarray(x, dtype=np.float32) for x in batches]
    deltas = []
    for x in xs:
        scale = float(np.sqrt(np.mean(x ** 2))) or 1.0
        deltas.append((eps * scale * rng.standard_normal(x.shape)).astype(np.float32))
    both = features(np.concatenate([*xs, *(x + d for x, d in zip(xs, deltas))]), training=False)
    h = np.asarray(keras.ops.convert_to_numpy(both), dtype=np.float64)
    h = h.reshape(2, sum(len(x) for x in xs), -1)
    out, start = [], 0
    for x, delta in zip(xs, deltas):
        rows = slice(start, start + len(x))
        start += len(x)
        q_out = np.mean((h[1, rows] - h[0, rows]) ** 2, axis=1)
        q_in = np.mean(delta.reshape(len(x), -1).astype(np.float64) ** 2, axis=1)
        gain = np.maximum(q_out / q_in, GAIN_FLOOR)
        out.append(float(np.mean(0.5 * np.log(gain)) / max(depth, 1)))
    return out


def structure_key(arch: Architecture) -> tuple:
    """What the probed network's shape depends on (not the learning rate or momentum)."""
    return (arch.family, arch.input_shape, arch.n_outputs, arch.task,
            tuple((s.nodes, s.edges, s.width) for s in arch.stages))


def redraw_weights(model: keras.Model, weight_scale: float) -> None:
    """Fresh stage kernels from the builder's initialiser (global Keras seed), zero biases.

    Called on every probed network, new or reused, so its weights depend only on
    the seed set just before, never on which networks were probed earlier.
    """
    for layer in model.layers:
        if layer.name.startswith("s") and hasattr(layer, "kernel"):
            layer.kernel.assign(weight_initializer(weight_scale)(tuple(layer.kernel.shape)))
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(np.zeros(tuple(layer.bias.shape), dtype="float32"))


def probe_model(arch: Architecture, weight_scale: float, linear: bool) -> keras.Model:
    """The builder's network for ``arch`` (linearised on request), reused within a sweep."""
    key = (structure_key(arch), linear)
    if key not in _MODELS:
        model = build_model(arch, weight_scale=weight_scale)
        _MODELS[key] = feature_model(linearised(model) if linear else model)
    return _MODELS[key]


_MODELS: dict[tuple, keras.Model] = {}


def probe_architecture(arch: Architecture, x: np.ndarray, *, weight_scale: float, seed: int,
                       linear: bool = False, mask_rate: float | None = None) -> float:
    """Lyapunov exponent of ``arch`` with initial weights drawn from ``seed``.

    Args:
        arch: The network, as the search space decodes it.
        x: A batch of real inputs.
        weight_scale: sigma^2 of the fan-in initialisation (``train.weight_scale``).
        seed: Seeds the initial weights, the masks and the perturbation.
        linear: Replace every ReLU by the identity (the theory check).
        mask_rate: Keep each stage kernel entry with this probability (None: all).
    """
    model = probe_model(arch, weight_scale, linear)
    keras.utils.set_random_seed(seed)
    redraw_weights(model, weight_scale)
    rng = np.random.default_rng(seed)
    if mask_rate is not None:
        mask_kernels(model, mask_rate, rng)
    return perturbation_exponent(model, x, network_depth(arch), rng)


def reset() -> None:
    """Forget the networks built so far and clear the Keras session (once per sweep)."""
    _MODELS.clear()
    keras.backend.clear_session()


def probe_many(archs: Sequence[Architecture], x: np.ndarray, *, weight_scale: float,
               seeds: Sequence[int], linear: bool = False,
               mask_rate: float | None = None) -> list[float]:
    """:func:`probe_architecture` for each (architecture, seed) pair.

    Networks of the same shape are built once (until :func:`reset`) and get fresh
    weights for each seed; a vanished perturbation counts as the floor gain.
    """
    out = []
    for arch, seed in zip(archs, seeds):
        value = probe_architecture(arch, x, weight_scale=weight_scale, seed=int(seed),
                                   linear=linear, mask_rate=mask_rate)
        out.append(value if math.isfinite(value) else float(np.log(GAIN_FLOOR)))
    return out


def probe_table(archs: Sequence[Architecture], batches: Sequence[np.ndarray], *,
                weight_scale: float, seeds: Sequence[int], linear: bool = False,
                mask_rate: float | None = None) -> np.ndarray:
    """Exponents of each (architecture, seed) network on each batch: ``len(archs) x len(batches)``.

    A row is one network with one weight draw; its columns push different real
    inputs (and perturbations) through the same weights, so the bootstrap of
    :mod:`gnas.chaos.bootstrap` can tell input noise from network noise.
    """
    out = np.empty((len(archs), len(batches)))
    floor = float(np.log(GAIN_FLOOR))
    for i, (arch, seed) in enumerate(zip(archs, seeds)):
        model = probe_model(arch, weight_scale, linear)
        keras.utils.set_random_seed(int(seed))
        redraw_weights(model, weight_scale)
        rng = np.random.default_rng(int(seed))
        if mask_rate is not None:
            mask_kernels(model, mask_rate, rng)
        values = perturbation_exponents(model, batches, network_depth(arch), rng)
        out[i] = [value if math.isfinite(value) else floor for value in values]
    return out
