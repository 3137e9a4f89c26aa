"""Unit and filter cuts rebuild smaller layers that compute what the original computes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnas.genome.architecture import Architecture, StageArch, complexity


def _arch(family: str) -> Architecture:
    shape = (8, 8, 1) if family == "conv" else (12,)
    stages = (StageArch(0, 3, ((0, 1), (0, 2), (1, 2)), 8), StageArch(1, 2, ((0, 1),), 4))
    return Architecture(family, shape, 3, "classification", stages, 0.05, 0.9)


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_shrunk_stage_has_the_predicted_size_and_the_same_function(family):
    from gnas.backend.builder import build_model
    from gnas.backend.restructure import shrink

    arch = _arch(family)
    model = build_model(arch)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BN statistics and biases
        layer.set_weights([rng.normal(size=w.shape).astype("float32") * (0.3 if w.ndim else 1)
                           if "variance" not in v.path else rng.uniform(0.5, 2, size=w.shape).astype("float32")
                           for w, v in zip(layer.get_weights(), layer.weights)])
    keep = [0, 2, 3, 6, 7]
    small_arch = dataclasses.replace(arch, stages=(dataclasses.replace(arch.stages[0], width=len(keep)),
                                                   arch.stages[1]))
    small = shrink(model, arch, small_arch, {0: keep}, build_model)
    assert small.count_params() == complexity(small_arch)[0] < model.count_params()

    # The original with the dropped units' outgoing weights zeroed computes the same thing.
    kind = "conv" if family == "conv" else "dense"
    drop = [u for u in range(8) if u not in keep]
    for name in ["s0_n1", "s0_n2", "s1_n0"]:  # readers of stage 0's unit positions
        layer = model.get_layer(f"{name}_{kind}")
        w = layer.get_weights()
        w[0][..., drop, :] = 0.0
        layer.set_weights(w)
    x = rng.normal(size=(5, *arch.input_shape)).astype("float32")
    np.testing.assert_allclose(small(x, training=False), model(x, training=False), atol=1e-5)
