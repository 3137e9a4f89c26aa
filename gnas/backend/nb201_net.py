"""The NAS-Bench-201 network of a cell, in Keras, as the benchmark's authors build it.

The macro skeleton is ``TinyNetwork`` of AutoDL-Projects
(``xautodl/models/cell_infers/tiny_network.py``): a 3×3 stem convolution of
C = 16 channels and its batch norm; three stages of N = 5 copies of the cell at
C = 16, 32, 64, a residual reduction block (``ResNetBasicblock``, stride 2)
between stages; batch norm and ReLU, global average pooling, a linear classifier.
A cell (``InferCell``) has four nodes; node ``i`` sums its six edges' ops applied
to the earlier nodes, node 3 is the output. Its ops (``cell_operations.py``):

* ``none``: zeros of the input's shape (the edge stays in the graph, as in the
  authors' code, so a convolution whose output only reaches ``none`` edges is
  still part of the network and of its parameter count);
* ``skip_connect``: the identity (inside a stage a cell keeps its width);
* ``nor_conv_1x1`` / ``nor_conv_3x3``: ReLU, convolution without bias, batch norm;
* ``avg_pool_3x3``: 3×3 average pooling, stride 1, padding excluded from the mean.

Edges are given in the table's order ``Op0..Op5`` = 1←0, 2←0, 2←1, 3←0, 3←1, 3←2,
the order of the standard string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
Batch norm keeps PyTorch's defaults (momentum 0.1, epsilon 1e-5); strided 3×3
convolutions pad one pixel on every side as PyTorch does. Built-in layers only,
so an exported model loads with plain ``keras.models.load_model``. Its trainable
parameters equal the table's ``model_size`` (tests/unit/test_nb201_net.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
STEM_CHANNELS = 16
CELLS_PER_STAGE = 5
BN_MOMENTUM = 0.9   # PyTorch's momentum 0.1
BN_EPSILON = 1e-5


def _bn(x, name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _conv(x, channels: int, kernel: int, stride: int, name: str):
    """A bias-free convolution padded as PyTorch pads it (``kernel // 2`` on every side)."""
    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(channels, kernel, strides=stride, padding="valid", use_bias=False,
                         name=name)(x)


def _relu_conv_bn(x, channels: int, kernel: int, stride: int, name: str):
    x = layers.ReLU(name=f"{name}_relu")(x)
    return _bn(_conv(x, channels, kernel, stride, f"{name}_conv"), f"{name}_bn")


def _edge(x, op: str, channels: int, name: str):
    """One edge of a cell inside a stage (stride 1, width kept)."""
    if op == "none":
        return layers.Rescaling(0.0, name=f"{name}_zero")(x)
    if op == "skip_connect":
        return x
    if op == "nor_conv_1x1":
        return _relu_conv_bn(x, channels, 1, 1, name)
    if op == "nor_conv_3x3":
        return _relu_conv_bn(x, channels, 3, 1, name)
    if op == "avg_pool_3x3":
        return layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    raise ValueError(f"unknown NAS-Bench-201 op {op!r}: use one of {', '.join(NB201_OPS)}")


def _cell(x, ops: Sequence[str], channels: int, name: str):
    nodes = [x]
    for node in (1, 2, 3):
        inputs = [_edge(nodes[src], ops[e], channels, f"{name}_e{node}{src}")
                  for e, (dst, src) in enumerate(EDGES) if dst == node]
        nodes.append(inputs[0] if len(inputs) == 1 else layers.Add(name=f"{name}_n{node}")(inputs))
    return nodes[-1]


def _reduction(x, channels: int, name: str):
    """``ResNetBasicblock`` with stride 2: two ReLU-conv-BN, and a pooled 1×1 conv shortcut."""
    y = _relu_conv_bn(x, channels, 3, 2, f"{name}_a")
    y = _relu_conv_bn(y, channels, 3, 1, f"{name}_b")
    shortcut = layers.AveragePooling2D(2, strides=2, name=f"{name}_down_pool")(x)
    shortcut = _conv(shortcut, channels, 1, 1, f"{name}_down_conv")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """The six ops of a cell, checked: one line naming what is wrong."""
    ops = tuple(ops)
    if len(ops) != len(EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops")
    bad = [op for op in ops if op not in NB201_OPS]
    if bad:
        raise ValueError(f"unknown NAS-Bench-201 op {bad[0]!r}: use one of {', '.join(NB201_OPS)}")
    return ops


def build_nb201(ops: Sequence[str], num_classes: int = 10,
                input_shape: tuple[int, int, int] = (32, 32, 3)) -> keras.Model:
    """The uncompiled NAS-Bench-201 network of the cell ``ops`` (``Op0..Op5``), logits out."""
    ops = check_ops(ops)
    inputs = keras.Input(input_shape, name="input")
    x = _bn(_conv(inputs, STEM_CHANNELS, 3, 1, "stem_conv"), "stem_bn")
    for stage in range(3):
        channels = STEM_CHANNELS * 2 ** stage
        if stage:
            x = _reduction(x, channels, f"reduce{stage}")
        for c in range(CELLS_PER_STAGE):
            x = _cell(x, ops, channels, f"s{stage}_c{c}")
    x = layers.ReLU(name="last_relu")(_bn(x, "last_bn"))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="nb201")


def trainable_parameters(model: keras.Model) -> int:
    """Parameters the authors count (``numel`` of every parameter): batch norms' running statistics excluded."""
    return int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
