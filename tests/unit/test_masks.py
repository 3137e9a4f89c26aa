"""Mask patterns (NumPy) and masks that stay zero through real Keras training."""
from __future__ import annotations

import numpy as np
import pytest

from gnas.pruning import masks
from gnas.errors import GnasError


def scores(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def test_irregular_removes_the_lowest_fraction():
    s = scores((16, 8))
    m = masks.make_mask("irregular", s, 0.75)
    assert m.shape == s.shape and int((m == 0).sum()) == 96
    assert s[m == 0].max() < s[m == 1].min()


def test_row_and_column_are_whole_lines():
    s = scores((3, 3, 4, 8))
    rows = masks.make_mask("row", s, 0.5).reshape(-1, 8)
    assert set(rows.sum(axis=1)) == {0.0, 8.0} and (rows.sum(axis=1) == 0).sum() == 18
    cols = masks.make_mask("column", s, 0.25).reshape(-1, 8)
    assert set(cols.sum(axis=0)) == {0.0, 36.0} and (cols.sum(axis=0) == 0).sum() == 2


def test_block_removes_whole_tiles_including_partial_ones():
    s = scores((10, 8))
    m = masks.make_mask("block", s, 0.5)
    tiles = [m[r:r + 4, c:c + 4] for r in range(0, 10, 4) for c in range(0, 8, 4)]
    assert all(t.min() == t.max() for t in tiles)
    assert sum(t.max() == 0 for t in tiles) == 3  # floor(0.5 * 6)


@pytest.mark.parametrize("shape", [(16, 8), (3, 3, 8, 4), (12, 5)])
@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (3, 4)])
def test_nm_holds_in_every_group(shape, nm):
    n, m = nm
    s = scores(shape, seed=1)
    mask = masks.make_mask("nm", s, nm=nm)
    w = s * mask
    groups = np.moveaxis(w, -2, -1).reshape(-1, m)
    assert ((groups != 0).sum(axis=1) == n).all()
    assert masks.nm_holds(w, n, m)
    assert not masks.nm_holds(s, n, m)
    # the kept weights are the largest of their group
    kept = np.moveaxis(s, -2, -1).reshape(-1, m)
    keep = np.moveaxis(mask, -2, -1).reshape(-1, m)
    assert (np.where(keep == 1, kept, np.inf).min(axis=1) >= np.where(keep == 0, kept, -np.inf).max(axis=1)).all()


def test_saliency_ranking_differs_from_magnitude():
    w = np.array([[1.0, 0.1], [0.5, 0.2]])
    g = np.array([[0.01, 10.0], [1.0, 1.0]])
    assert masks.make_mask("irregular", masks.importance(w), 0.25)[0, 1] == 0
    assert masks.make_mask("irregular", masks.importance(w, g), 0.25)[0, 0] == 0


@pytest.mark.parametrize("text,msg", [("4:4", "below M"), ("5:4", "below M"), ("0:4", "below M"),
                                      ("2-4", "expected N:M"), ("a:b", "expected N:M")])
def test_bad_nm_text(text, msg):
    with pytest.raises(GnasError, match=msg) as err:
        masks.parse_nm(text)
    assert "\n" not in str(err.value)


def test_m_not_dividing_the_layer_is_refused():
    with pytest.raises(GnasError, match="does not divide the 6 input channels") as err:
        masks.make_mask("nm", scores((6, 4)), nm=(2, 4), layer="s0_n0_dense")
    assert "\n" not in str(err.value)
    with pytest.raises(GnasError):
        masks.make_mask("nope", scores((4, 4)))


def test_masks_stay_zero_after_real_keras_training():
    keras = pytest.importorskip("keras")
    from sklearn.datasets import load_digits

    from gnas.backend import masking

    x, y = load_digits(return_X_y=True)
    x = (x[:256] / 16.0).astype("float32")
    y = y[:256]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(16, activation="relu", name="a")(inputs)
    out = keras.layers.Dense(10, activation="softmax", name="head")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    m = masking.compute_masks(model, "nm", 0.5, (2, 4))
    assert set(m) == {"a", "head"}
    before = {n: model.get_layer(n).kernel.numpy().copy() for n in m}
    loss = masking.masked_fit(model, x, y, m, task="classification", learning_rate=0.1, momentum=0.9,
                              steps=12, batch_size=32, seed=1)
    assert np.isfinite(loss)
    for name, mask in m.items():
        k = model.get_layer(name).kernel.numpy()
        assert (k[mask == 0] == 0).all()                     # exactly zero, not small
        assert not np.allclose(k[mask == 1], before[name][mask == 1])  # the rest trained
        assert masks.nm_holds(k, 2, 4)
    total, active = masking.parameter_counts(model, m)
    assert total - active == sum(int((mk == 0).sum()) for mk in m.values())


def test_storage_note_says_what_the_file_holds():
    """Irregular and N:M zeros are stored dense; row, column and block units are removed."""
    from gnas.pruning.masks import storage_note

    assert storage_note("none", "2:4", 0.5, 10, 10) is None
    nm = storage_note("nm", "2:4", 0.5, 60, 100)
    assert nm.startswith("2:4: 50 % zeros, stored dense; no speed-up without sparse kernels")
    assert "60 non-zero of 100 stored" in nm
    assert "stored dense" in storage_note("irregular", "2:4", 0.7, 30, 100)
    column = storage_note("column", "2:4", 0.5, 1_000, 1_200)
    assert "removed from the file (1,200 stored parameters)" in column
    assert "the 200 zeros left inside kept units are stored dense (1,000 non-zero)" in column
