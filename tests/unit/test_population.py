"""Training a group at once: Keras' own training per member, members independent."""
from __future__ import annotations

import numpy as np
import pytest

from gnas.config import load_config
from gnas.datasets import load_for_run
from gnas.genome.space import bits_to_str, str_to_bits
from gnas.records import EvalTask


@pytest.fixture(scope="module")
def evaluator():
    from gnas.backend import runtime

    runtime.configure(1)
    from gnas.backend.evaluator import Evaluator

    cfg = load_config(None, {"train.epochs": 2, "data.max_train_samples": 240,
                             "space.stage_nodes": (3,), "space.max_depth": 1,
                             "space.dense_widths": (32, 32, 32, 32)})
    return Evaluator(cfg, load_for_run(cfg))


def _tasks(ev, n: int) -> list[EvalTask]:
    rng = np.random.default_rng(7)
    return [EvalTask(key=f"k{i}", genome=bits_to_str(ev.space.random_bits(rng)), seed=50 + i)
            for i in range(n)]


def _outcome(result):
    return (result.status, result.val_error, result.val_loss)


@pytest.mark.slow
def test_a_member_trains_as_keras_fit_on_its_own_order(evaluator):
    from gnas.backend.population import epoch_order, train_group
    from gnas.backend.trainer import compile_model, score

    tasks = _tasks(evaluator, 2)
    fused = train_group(evaluator, tasks)
    data = evaluator.data
    for task, result in zip(tasks, fused):
        arch = evaluator.space.decode(str_to_bits(task.genome))
        model = evaluator.build(arch, task.seed)
        compile_model(model, arch)
        rng = np.random.default_rng(task.seed)
        for _ in range(evaluator.cfg.train.epochs):
            order = epoch_order(rng, len(data.x_train))
            model.fit(data.x_train[order], data.y_train[order], batch_size=32, epochs=1,
                      shuffle=False, verbose=0)
        solo = score(model, arch, data.x_val, data.y_val)
        assert result.status == "ok" and result.metrics["group"] == 2
        assert result.val_error == pytest.approx(solo["error"], abs=1e-6)
        assert result.val_loss == pytest.approx(solo["loss"], rel=1e-5)


def test_members_do_not_depend_on_their_group_mates(evaluator, monkeypatch):
    from gnas.backend import population

    tasks = _tasks(evaluator, 4)
    alone = {t.key: _outcome(r) for t, r in zip(tasks, population.train_group(evaluator, tasks[:3]))}
    assert all(o[0] == "ok" for o in alone.values())
    [again, _] = population.train_group(evaluator, [tasks[0], tasks[3]])
    assert _outcome(again) == alone["k0"]

    build = population._build

    def nan_or_broken(ev, arch, seed):
        if seed == tasks[3].seed:
            raise ValueError("cannot build this one")
        model = build(ev, arch, seed)
        if seed == tasks[1].seed:
            model.layers[-1].kernel.assign(np.full(model.layers[-1].kernel.shape, np.nan))
        return model

    monkeypatch.setattr(population, "_build", nan_or_broken)
    mixed = population.train_group(evaluator, tasks)
    assert _outcome(mixed[0]) == alone["k0"] and _outcome(mixed[2]) == alone["k2"]
    assert mixed[1].status == "failed" and "training diverged (loss nan)" in mixed[1].message
    assert mixed[3].status == "failed" and "ValueError: cannot build this one" in mixed[3].message


@pytest.mark.gpu
def test_a_group_trains_in_mixed_precision_on_a_gpu(evaluator):
    import tensorflow as tf
    from dataclasses import replace

    from gnas.backend.evaluator import Evaluator
    from gnas.backend.population import train_group

    if not tf.config.list_logical_devices("GPU"):
        pytest.skip("no GPU visible")
    cfg = replace(evaluator.cfg, train=replace(evaluator.cfg.train, mixed_precision=True))
    ev = Evaluator(cfg, evaluator.data)
    results = train_group(ev, _tasks(ev, 2))
    assert all(r.ok and 0.0 <= r.val_error <= 1.0 for r in results)
    import keras

    assert keras.config.dtype_policy().name == "mixed_float16"
    keras.config.set_dtype_policy("float32")
