"""Saving a network as a ``.keras`` file: the network only, replaced atomically.

Every ``.keras`` file gnas writes (``best/model.keras``, a worker's retrained
network, ``gnas export``) is written here, so each holds the same thing (the
layers and weights, no optimiser state) and a reader never sees half a file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import keras


def network_only(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same layers and weights, so a save holds no optimiser state.

    A ``.keras`` file of a trained, compiled model also stores the optimiser's
    slots (SGD momentum doubles the file), Keras ignores ``include_optimizer``
    for that format and ``clone_model`` compiles its clone; file sizes would then
    compare training states, not networks.
    """
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file beside ``path``, then rename it to ``path`` (``os.replace``).

    The temporary name ends in ``.keras`` (Keras checks the suffix); on any
    error it is removed and ``path`` keeps what it held.
    """
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_keras(model: keras.Model, path: Path) -> None:
    """Save the network of ``model`` (no optimiser state) to ``path`` atomically."""
    replace_file(path, lambda tmp: network_only(model).save(tmp))


def keras_bytes(model: keras.Model) -> bytes:
    """The ``.keras`` file of the network of ``model``, as bytes (to send to another node)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        save_keras(model, path)
        return path.read_bytes()
