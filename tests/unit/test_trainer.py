"""Training failures are recorded, not printed or raised past the evaluator."""
from __future__ import annotations

import pytest

from gnas.genome.architecture import Architecture, StageArch
from gnas.datasets import load_dataset
from gnas.errors import EvaluationFailed


def small_dense(learning_rate: float):
    """Digits (200 samples), one Dense(64) node built from seed 0: (data, arch, model)."""
    from gnas.backend import runtime

    runtime.configure(1)
    import keras

    from gnas.backend.builder import build_model

    data = load_dataset("digits", max_train_samples=200)
    arch = Architecture(family="dense", input_shape=data.input_shape, n_outputs=10,
                        task="classification", stages=(StageArch(0, 1, (), 64),),
                        learning_rate=learning_rate, momentum=0.9)
    keras.utils.set_random_seed(0)
    return data, arch, build_model(arch)


def test_divergence_is_a_silent_evaluation_failure(capsys):
    from gnas.backend.trainer import compile_model, fit

    data, arch, model = small_dense(1e4)
    compile_model(model, arch)
    with pytest.raises(EvaluationFailed, match="diverged"):
        fit(model, data.x_train * 1e30, data.y_train, epochs=3, batch_size=32)
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_a_finite_but_huge_loss_is_a_divergence_with_the_nan_wording():
    import numpy as np

    data, arch, model = small_dense(0.01)
    import keras

    from gnas.backend.trainer import compile_model, fit, loss_diverged, score

    assert [loss_diverged(v) for v in (2.3, 1e6, 5e24, float("nan"), float("inf"), -float("inf"))] == [
        False, False, True, True, True, True]
    flags = loss_diverged(keras.ops.convert_to_tensor(np.array([2.3, 5e24, np.nan], np.float32)))
    assert [bool(f) for f in keras.ops.convert_to_numpy(flags)] == [False, True, True]

    head = model.get_layer("head")
    head.kernel.assign(head.kernel.numpy() * 1e12)  # finite logits, a loss of ~1e12
    compile_model(model, arch)
    with pytest.raises(EvaluationFailed, match=r"training diverged \(validation loss \d[.\d]*e\+\d+\)"):
        score(model, arch, data.x_val, data.y_val)
    with pytest.raises(EvaluationFailed, match=r"training diverged \(loss \d[.\d]*e\+\d+\) at learning"):
        fit(model, data.x_train, data.y_train, epochs=1, batch_size=32)
