"""Saving a network: behind its data's preparation, the network only, replaced atomically.

Every model file gnas writes (``best/model.keras``, a worker's retrained
network, ``gnas export`` in any format) is written here, so each holds the same
thing: the raw-input wrapper of :mod:`gnas.backend.preprocessing` around the
layers and weights, no optimiser state; and a reader never sees half a file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from gnas.backend.preprocessing import deployable

#: ``gnas export --format`` -> Keras' ``Model.export`` format (``keras`` is ``Model.save``).
KERAS_FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}


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
    """``write`` a temporary file (or folder) beside ``path``, then rename it to ``path``.

    The temporary name keeps the suffix (Keras checks it); on any error it is
    removed and ``path`` keeps what it held.
    """
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    old = path.with_name(f".{path.stem}.old{path.suffix}")
    _remove(tmp)  # left by a killed write of this same file
    _remove(old)
    try:
        write(tmp)
        if path.is_dir() and not path.is_symlink():  # a SavedModel exported before: swap the folders
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    """Remove a temporary file or folder of :func:`replace_file` (never a symlink's target)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _called(model: keras.Model) -> keras.Model:
    """``model`` after one call on zeros: Keras' ONNX export refuses a model never called."""
    spec = model.inputs[0]
    if np.dtype(spec.dtype).kind in "biuf":  # numbers; a text model is left as it is
        model(np.zeros(tuple(1 if d is None else int(d) for d in spec.shape), dtype=spec.dtype))
    return model


def save_keras(model: keras.Model, path: Path, preprocessing: dict[str, Any], fmt: str = "keras") -> None:
    """Save the network of ``model`` behind its data's ``preprocessing`` to ``path`` atomically.

    ``fmt`` ``keras`` writes a ``.keras`` file (``Model.save``); the others go
    through Keras' ``Model.export`` (:data:`KERAS_FORMATS`). Every format takes
    raw inputs.
    """
    wrapped = deployable(model, preprocessing)  # a copy: no optimiser state
    if fmt == "keras":
        replace_file(path, wrapped.save)
    else:
        called = _called(wrapped)
        with warnings.catch_warnings():  # tf2onnx's own NumPy deprecation notes are not the user's
            warnings.simplefilter("ignore", FutureWarning)
            replace_file(path, lambda tmp: called.export(str(tmp), format=KERAS_FORMATS[fmt], verbose=False))


def keras_bytes(model: keras.Model, preprocessing: dict[str, Any]) -> bytes:
    """The ``.keras`` file of :func:`save_keras`, as bytes (to send to another node)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        save_keras(model, path, preprocessing)
        return path.read_bytes()
