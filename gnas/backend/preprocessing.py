"""A saved model takes raw inputs: the data set's preparation as built-in Keras layers.

The network a search trains reads prepared arrays. What gnas saves
(``best/model.keras``, ``gnas export``) wraps it: the raw input, the
preparation of :func:`gnas.datasets.preprocessing.preprocessing_record` as
layers (``Rescaling`` and ``Reshape`` for images, ``Normalization`` for
vectors, a multi-hot encoding for text), the network as one nested layer named
:data:`NETWORK`, and for a regression a de-standardisation of its output, so
``keras.models.load_model(f).predict(raw_x)`` gives the scores gnas reports.
Only built-in layers and ``keras.ops`` are used, so the file loads in safe
mode in a process that has never imported gnas; the layers hold constants,
not weights, so ``count_params`` is the network's own.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

#: The name of the search's network inside a saved model.
NETWORK = "network"


def deployable(network: keras.Model, record: dict[str, Any]) -> keras.Model:
    """``network`` behind the input preparation (and before the output scaling) of ``record``.

    Args:
        network: The trained network, reading prepared inputs.
        record: :func:`gnas.datasets.preprocessing.preprocessing_record` of its data.

    Returns:
        A functional model from raw inputs to predictions in the data's own units.
    """
    network = _named(network)
    inp, x = _input_steps(record["input"])
    y = network(x)
    out = record.get("output")
    if out:  # the network predicts (y - mean) / std
        y = layers.Normalization(mean=np.array([out["mean"]], np.float32),
                                 variance=np.array([float(out["std"]) ** 2], np.float32), invert=True,
                                 name="target_scale")(y)
    return keras.Model(inp, y, name="gnas_model")


def load_deployable(path: Any) -> keras.Model:
    """A saved model, loaded as any Keras user would (safe mode, no gnas objects)."""
    return keras.saving.load_model(path)


def network_of(model: keras.Model) -> keras.Model:
    """The network inside a saved model; a model saved without preparation is its own."""
    try:
        inner = model.get_layer(NETWORK)
    except ValueError:
        return model
    return inner if isinstance(inner, keras.Model) else model


def _named(network: keras.Model) -> keras.Model:
    """A copy of the network (same layers and weights, no optimiser) under the name :data:`NETWORK`."""
    config = network.get_config()
    config["name"] = NETWORK
    copy = keras.Model.from_config(config)
    copy.set_weights(network.get_weights())
    return copy


def _input_steps(spec: dict[str, Any]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The raw input and the prepared tensor the network reads."""
    kind = spec["kind"]
    if kind == "image":
        inp = keras.Input(tuple(spec["raw_shape"]), name="raw_image")
        x = inp
        if float(spec["scale"]) != 1.0:
            x = layers.Rescaling(float(spec["scale"]), name="pixel_scale")(x)
        if list(spec["raw_shape"]) != list(spec["shape"]):
            x = layers.Reshape(tuple(spec["shape"]), name="channel_axis")(x)
        return inp, x
    if kind == "text":
        return _text_steps(spec)
    inp = keras.Input((int(spec["features"]),), name="raw_features")
    if not spec.get("mean"):
        return inp, inp
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    x = layers.Normalization(mean=mean, variance=np.square(std), name="standardise")(inp)
    return inp, x


def _text_steps(spec: dict[str, Any]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Padded word-index sequences to the multi-hot rows of ``gnas.datasets.prepare``.

    A file value ``v`` sets column ``v + index_from`` when that is below
    ``num_words``; the start-of-sequence column is always set. Padding and
    dropped words are sent to the start column, which is set anyway, so they
    add nothing.
    """
    inp = keras.Input((None,), dtype="int32", name="word_indices")
    start = int(spec["start_char"])
    col = ops.add(inp, int(spec["index_from"]))
    keep = ops.logical_and(ops.not_equal(inp, int(spec["pad"])),
                           ops.logical_and(ops.greater_equal(inp, 0), ops.less(col, int(spec["num_words"]))))
    col = ops.where(keep, col, start)
    x = layers.CategoryEncoding(num_tokens=int(spec["num_words"]), output_mode="multi_hot",
                                name="multi_hot")(col)
    return inp, x
