"""The one .keras save: the network only, and a failed save leaves the old file as it was."""
from __future__ import annotations

import keras
import pytest

from gnas.backend.saving import keras_bytes, save_keras

#: Four raw features, used as they are (no statistics to standardise with).
RAW = {"input": {"kind": "vector", "features": 32, "mean": [], "std": []}, "output": None}


def _model() -> keras.Model:
    """Big enough that SGD's momentum slots outweigh the raw-input wrapper's description."""
    inputs = keras.Input((32,))
    model = keras.Model(inputs, keras.layers.Dense(64)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.fit(keras.ops.ones((8, 32)), keras.ops.zeros((8, 64)), verbose=0)
    return model


def test_save_keras_writes_the_network_without_optimiser_state(tmp_path):
    model = _model()
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "model.keras"
    save_keras(model, path, RAW)
    model.save(tmp_path / "with_optimiser.keras")
    loaded = keras.models.load_model(path)
    assert getattr(loaded, "optimizer", None) is None and loaded.count_params() == model.count_params()
    assert path.stat().st_size < (tmp_path / "with_optimiser.keras").stat().st_size
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]
    assert len(keras_bytes(model, RAW)) == path.stat().st_size


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")

    def broken(self, filepath, *args, **kwargs):
        open(filepath, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", broken)
    with pytest.raises(OSError):
        save_keras(_model(), path, RAW)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]
