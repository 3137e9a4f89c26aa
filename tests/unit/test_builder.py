"""The builder's initial weights: each layer its own draw, reproducible from the seed."""
from __future__ import annotations

import numpy as np
import pytest

from gnas.genome.architecture import Architecture, StageArch


@pytest.mark.parametrize("family,shape", [("dense", (8, 8)), ("conv", (8, 8, 1))])
def test_sibling_nodes_start_different_and_the_seed_repeats_them(family, shape):
    keras = pytest.importorskip("keras")
    from gnas.backend.builder import build_model

    # nodes 0 and 1 both read the stage input with the same width: shared initial
    # weights would keep them copies of each other for the whole training
    arch = Architecture(family=family, input_shape=shape, n_outputs=3, task="classification",
                        stages=(StageArch(0, 3, ((0, 2), (1, 2)), 4),), learning_rate=0.01,
                        momentum=0.5)
    layer = "s0_n{}_conv" if family == "conv" else "s0_n{}_dense"

    def kernels(seed: int) -> list[np.ndarray]:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build_model(arch)
        return [np.asarray(model.get_layer(layer.format(i)).kernel) for i in (0, 1)]

    first, second = kernels(3)
    assert first.shape == second.shape and not np.allclose(first, second)
    again = kernels(3)
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])
