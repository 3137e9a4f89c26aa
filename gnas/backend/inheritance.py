"""A network's layers as named arrays, and a child starting from its parent's.

Seed 004 (Yosinski et al.) finds that trained layers copied into a new network and
trained on beat a fresh initialisation. Builder names make the match plain: a
node's layers are ``s{stage}_n{node}_conv|bn|dense`` (a Genetic-CNN node id within
its stage) and the classifier is ``head``. A child's layer starts from the parent's
layer of the same name when every array has the same shape (same width, same
input width); batch-norm layers bring their moving statistics with them. Every
other layer keeps the initialisation the child's own seed gave it, and the child's
optimiser starts empty (its own learning rate and momentum, momenta at 0).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from gnas.records import EvalTask

#: The layers that carry what a network learned and may pass to a child.
INHERITABLE = re.compile(r"^(s\d+_n\d+_(conv|bn|dense)|head)$")


def inheritable_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's node and head layers, in model order."""
    return [layer for layer in model.layers if INHERITABLE.match(layer.name)]


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """The trained arrays of every inheritable layer, by layer name."""
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in inheritable_layers(model)}


def inherit(model: keras.Model, weights: Mapping[str, Sequence[np.ndarray]]) -> list[str]:
    """Set each layer of ``model`` that ``weights`` holds with the same shapes; the names set."""
    taken = []
    for layer in inheritable_layers(model):
        given = weights.get(layer.name)
        if given is None:
            continue
        mine = layer.get_weights()
        if len(mine) != len(given) or any(np.shape(a) != np.shape(b) for a, b in zip(mine, given)):
            continue
        layer.set_weights([np.asarray(g, dtype=a.dtype) for a, g in zip(mine, given)])
        taken.append(layer.name)
    return taken


def inherited_metrics(model: keras.Model, task: EvalTask) -> dict[str, Any]:
    """Start ``model`` from the weights ``task`` inherits; the row's record of what it took."""
    if not task.inherit:
        return {}
    return {"inherited_layers": inherit(model, task.inherit),
            "inheritable_layers": len(inheritable_layers(model))}
