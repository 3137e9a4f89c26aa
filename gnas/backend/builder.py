"""Architecture -> Keras model, with built-in layers only.

Built-in layers only, so an exported model loads with plain
``keras.models.load_model`` in a process that never imports gnas. Layer names
(``s{stage}_n{node}_...``) let the pruner and the chaos probe find a node's
weights and activations.
"""
from __future__ import annotations

import keras
from keras import layers

from gnas.genome.architecture import Architecture, StageArch


def weight_initializer(weight_scale: float) -> keras.initializers.Initializer:
    """Weights of variance ``weight_scale / fan_in`` (2.0 is He initialisation).

    Call it once per layer. A Keras 3 initializer without a seed draws its seed
    once, when it is made (from the global seed), and returns the same values at
    every call: layers sharing one start identical, and two sibling nodes reading
    the same input then stay copies of each other through training.
    """
    return keras.initializers.VarianceScaling(scale=weight_scale, mode="fan_in",
                                              distribution="untruncated_normal")


def _node(x, arch: Architecture, stage: StageArch, node: int, weight_scale: float,
          bn_momentum: float):
    name = f"s{stage.index}_n{node}"
    if arch.family == "conv":
        x = layers.Conv2D(stage.width, 3, padding="same", use_bias=False,
                          kernel_initializer=weight_initializer(weight_scale), name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    else:
        x = layers.Dense(stage.width, kernel_initializer=weight_initializer(weight_scale),
                         name=f"{name}_dense")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _merge(tensors, name: str):
    return tensors[0] if len(tensors) == 1 else layers.Add(name=name)(tensors)


def build_stage(x, arch: Architecture, stage: StageArch, weight_scale: float, bn_momentum: float):
    """Genetic-CNN stage: sources take the input, sinks are summed into the output."""
    outputs: dict[int, object] = {}
    for node in range(stage.nodes):
        preds = stage.predecessors(node)
        node_in = x if not preds else _merge([outputs[p] for p in preds],
                                             f"s{stage.index}_n{node}_in")
        outputs[node] = _node(node_in, arch, stage, node, weight_scale, bn_momentum)
    return _merge([outputs[n] for n in stage.sinks()], f"s{stage.index}_out")


def build_model(arch: Architecture, *, weight_scale: float = 2.0,
                bn_momentum: float = 0.9) -> keras.Model:
    """The Keras model of ``arch`` (uncompiled), with fresh initial weights."""
    inputs = keras.Input(arch.input_shape, name="input")
    x = inputs if arch.family == "conv" else layers.Flatten(name="flatten")(inputs)
    h, w = (arch.input_shape[0], arch.input_shape[1]) if arch.family == "conv" else (0, 0)
    for pos, stage in enumerate(arch.stages):
        if arch.family == "conv" and pos > 0 and h >= 2 and w >= 2:
            x = layers.MaxPooling2D(2, name=f"s{stage.index}_pool")(x)
            h, w = h // 2, w // 2
        x = build_stage(x, arch, stage, weight_scale, bn_momentum)
    if arch.family == "conv":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    activation = "softmax" if arch.task == "classification" else None
    outputs = layers.Dense(arch.n_outputs, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs, name="gnas_" + arch.key()[:8])
