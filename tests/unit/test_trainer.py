"""Training failures are recorded, not printed or raised past the evaluator."""
from __future__ import annotations

import pytest

from gnas.genome.architecture import Architecture, StageArch
from gnas.datasets import load_dataset
from gnas.errors import EvaluationFailed


def test_divergence_is_a_silent_evaluation_failure(capsys):
    from gnas.backend import runtime

    runtime.configure(1)
    from gnas.backend.builder import build_model
    from gnas.backend.trainer import compile_model, fit

    data = load_dataset("digits", max_train_samples=200)
    arch = Architecture(family="dense", input_shape=data.input_shape, n_outputs=10,
                        task="classification", stages=(StageArch(0, 1, (), 64),),
                        learning_rate=1e4, momentum=0.9)
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(arch)
    compile_model(model, arch)
    with pytest.raises(EvaluationFailed, match="diverged"):
        fit(model, data.x_train * 1e30, data.y_train, epochs=3, batch_size=32)
    assert capsys.readouterr().out == ""
