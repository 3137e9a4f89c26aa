"""Training a group at once: Keras' own training per member, members independent.

The dense family trains as one masked superset (gnas.backend.superset); with
``superset.applies`` patched off the same members train as their exact Keras
graphs in one step, the path the conv family takes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gnas.config import load_config
from gnas.datasets import load_for_run
from gnas.genome.space import bits_to_str, str_to_bits
from gnas.records import EvalTask

from helpers import one_stage_evaluator  # noqa: E402


@pytest.fixture(scope="module")
def evaluator():
    return one_stage_evaluator(epochs=2, samples=240)


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

    tasks = _tasks(evaluator, 5)
    alone = {t.key: _outcome(r) for t, r in zip(tasks, population.train_group(evaluator, tasks[:3]))}
    assert all(o[0] == "ok" for o in alone.values())
    [solo] = population.train_group(evaluator, tasks[:1])
    [_, again] = population.train_group(evaluator, [tasks[3], tasks[0]])  # other mate, other slot
    assert _outcome(solo) == _outcome(again) == alone["k0"]  # bit for bit

    build = population._build

    def nan_or_broken(ev, arch, seed):
        if seed == tasks[3].seed:
            raise ValueError("cannot build this one")
        model = build(ev, arch, seed)
        if seed == tasks[1].seed:
            model.layers[-1].kernel.assign(np.full(model.layers[-1].kernel.shape, np.nan))
        if seed == tasks[4].seed:  # huge logits: a finite loss far above any training's
            model.layers[-1].kernel.assign(model.layers[-1].kernel.numpy() * 1e12)
        return model

    monkeypatch.setattr(population, "_build", nan_or_broken)
    mixed = population.train_group(evaluator, tasks)
    assert _outcome(mixed[0]) == alone["k0"] and _outcome(mixed[2]) == alone["k2"]
    assert mixed[1].status == "failed" and "training diverged (loss nan)" in mixed[1].message
    assert mixed[3].status == "failed" and "ValueError: cannot build this one" in mixed[3].message
    assert mixed[4].status == "failed" and "training diverged (loss " in mixed[4].message
    assert "nan" not in mixed[4].message and "inf" not in mixed[4].message


@pytest.fixture(scope="module")
def two_stages():
    """Two active stages of widths 16 or 32 on 64 inputs: in stage 1 a node slot has
    separate kernels for the stage input and for its predecessors (64 inputs, not
    32); in stage 2 one kernel serves both roles (32 == 32 when padded)."""
    from gnas.backend import runtime

    runtime.configure(1)
    from gnas.backend.evaluator import Evaluator

    cfg = load_config(None, {"train.epochs": 1, "data.max_train_samples": 240,
                             "train.group_size": 4, "space.stage_nodes": (3, 3),
                             "space.max_depth": 2, "space.dense_widths": (16, 32, 16, 32)})
    ev = Evaluator(cfg, load_for_run(cfg))
    rng = np.random.default_rng(3)
    tasks: list[EvalTask] = []
    while len(tasks) < 3:
        genome = bits_to_str(ev.space.random_bits(rng))
        if len(ev.space.decode(str_to_bits(genome)).stages) == 2:
            tasks.append(EvalTask(key=f"t{len(tasks)}", genome=genome, seed=80 + len(tasks)))
    return ev, tasks


@pytest.mark.slow
def test_the_superset_trains_each_member_as_its_own_graph(two_stages, monkeypatch):
    from gnas.backend import population, superset

    ev, tasks = two_stages
    archs = [ev.space.decode(str_to_bits(t.genome)) for t in tasks]
    assert superset.applies(archs)
    widths = {tuple(s.width for s in a.stages) for a in archs}
    assert len(widths) > 1, "the members should differ in width"
    fused = population.train_group(ev, tasks)
    narrow = min(range(3), key=lambda k: sum(s.width for s in archs[k].stages))
    [alone] = population.train_group(ev, [tasks[narrow]])
    assert _outcome(alone) == _outcome(fused[narrow])  # padded to its mates' widths: exact
    monkeypatch.setattr(superset, "applies", lambda archs: False)
    exact = population.train_group(ev, tasks)
    for a, b in zip(fused, exact):
        assert a.status == b.status == "ok"
        assert a.val_error == pytest.approx(b.val_error, abs=1e-6)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5)


def _unused(net, s: int, j: int, stage, k: int) -> list:
    """Member ``k``'s slices of the superset weights its own graph does not have."""
    if j >= stage.nodes:
        return [v[k] for v in (net.inputs[s][j], net.nodes[s][j], net.biases[s][j]) if v is not None]
    units = [net.biases[s][j][k, :, stage.width:]]
    if net.nodes[s][j] is None:
        return units + [net.inputs[s][j][k, :, stage.width:]]
    return units + [net.inputs[s][j][k, :, stage.width:], net.nodes[s][j][k, :, stage.width:],
                    (net.nodes[s][j] if not stage.predecessors(j) else net.inputs[s][j])[k]]


@pytest.mark.slow
def test_a_new_group_of_one_shape_reuses_the_trace_and_padding_stays_zero(two_stages):
    from gnas.backend import population, superset

    ev, tasks = two_stages
    archs = [ev.space.decode(str_to_bits(t.genome)) for t in tasks]
    net = superset.superset_for(ev.supersets, superset.shape_of(archs, ev.batch_size(archs[0])))
    before = net.epoch.experimental_get_tracing_count()
    first = population.train_group(ev, tasks)
    moved = [tasks[2], tasks[0], tasks[1]]  # the same members, each in another slot
    second = population.train_group(ev, moved)
    assert net.epoch.experimental_get_tracing_count() - before <= 1
    assert net.totals.experimental_get_tracing_count() == 1
    assert [_outcome(r) for r in first] == [_outcome(r) for r in (second[1], second[2], second[0])]
    in_slots = [archs[2], archs[0], archs[1]]
    unused = [v for k, arch in enumerate(in_slots) for s, stage in enumerate(arch.stages)
              for j in range(net.shape.slots[s]) for v in _unused(net, s, j, stage, k)]
    assert sum(int(np.size(v)) for v in unused) > 0
    assert not any(np.any(v.numpy()) for v in unused)


def test_a_failing_shared_step_retrains_each_member_alone(evaluator, monkeypatch):
    from gnas.backend import population

    tasks = _tasks(evaluator, 2)
    together = [_outcome(r) for r in population.train_group(evaluator, tasks)]
    train = population._train_superset
    sizes = []

    def fails_when_shared(ev, members, epochs):
        sizes.append(len(members))
        if len(members) > 1:
            raise tf_error("the shared step ran out of memory")
        train(ev, members, epochs)

    monkeypatch.setattr(population, "_train_superset", fails_when_shared)
    alone = population.train_group(evaluator, tasks)
    assert sizes == [2, 1, 1]
    assert [_outcome(r) for r in alone] == together
    assert all(r.metrics["group"] == 1 for r in alone)


def tf_error(message: str) -> Exception:
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, message)


def test_the_final_retrain_rebuilds_the_network_the_group_scored(evaluator):
    from dataclasses import replace

    from gnas.backend.evaluator import Evaluator
    from gnas.backend.population import train_group
    from gnas.backend.trainer import score

    ev = Evaluator(replace(evaluator.cfg, train=replace(evaluator.cfg.train, group_size=4)),
                   evaluator.data)
    [task] = _tasks(ev, 1)
    [result] = train_group(ev, [task])
    arch = ev.space.decode(str_to_bits(task.genome))
    val = score(ev.train(arch, task.seed), arch, ev.data.x_val, ev.data.y_val)
    assert result.ok
    # the same count of mistakes: Keras' accuracy is a float32, the group's a count / n
    assert val["error"] == pytest.approx(result.val_error, abs=1e-6)
    assert val["loss"] == pytest.approx(result.val_loss, rel=1e-5)


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



@pytest.fixture(scope="module")
def conv_evaluator():
    """One 3-node conv stage of width 4 on 240 digits, 2 epochs, ``train.group_size`` 4."""
    from gnas.backend import runtime

    runtime.configure(1)
    from gnas.backend.evaluator import Evaluator

    cfg = load_config(None, {"train.epochs": 2, "data.max_train_samples": 240,
                             "train.group_size": 4, "space.family": "conv",
                             "space.stage_nodes": (3,), "space.max_depth": 1,
                             "space.conv_widths": (4, 4, 4, 4)})
    return Evaluator(cfg, load_for_run(cfg))


@pytest.mark.slow
def test_a_conv_score_is_the_same_alone_with_some_mates_or_others_in_another_slot(conv_evaluator):
    from gnas.backend import population

    ev = conv_evaluator
    tasks = _tasks(ev, 5)
    assert {ev.space.decode(str_to_bits(t.genome)).family for t in tasks} == {"conv"}
    [alone] = population.train_group(ev, tasks[:1])
    with_a = population.train_group(ev, tasks[:3])
    with_b = population.train_group(ev, [tasks[3], tasks[4], tasks[0]])
    assert alone.ok and alone.metrics["group"] == 1 and with_b[2].metrics["group"] == 3
    # bit for bit, not within a tolerance (README, "Training a generation at once")
    assert _outcome(with_a[0]) == _outcome(alone) == _outcome(with_b[2])
    assert len({_outcome(r) for r in with_a + with_b}) == 5  # the members did train apart


def test_successive_groups_trace_once_each_without_a_retracing_warning(monkeypatch):
    import logging
    from types import SimpleNamespace

    import tensorflow as tf

    from gnas.backend import population

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 2, 16).astype(np.int32)
    ev = SimpleNamespace(data=SimpleNamespace(x_val=x, y_val=y))
    arch = SimpleNamespace(task="classification")
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    monkeypatch.setattr(polymorphic_function, "FREQUENT_TRACING_WARNING_THRESHOLD", 2)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        for _ in range(3):  # one more group than TensorFlow tolerates, with the threshold at 2
            model = _tiny_model()
            epoch = population._make_epoch([model], batch=8)
            for _ in range(2):
                population.run_epoch(epoch, tf.constant(x), tf.constant(y),
                                     tf.constant(rng.permutation(16)[None].astype(np.int32)), 1, 8,
                                     "1 network", (1, 1))
            assert epoch.experimental_get_tracing_count() == 1
            member = SimpleNamespace(model=model, arch=arch, error="", val={})
            population._score_together(ev, [member])
            assert 0.0 <= member.val["error"] <= 1.0
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]



def _tiny_model(kernel_scale: float = 1.0):
    """A compiled 4-input softmax layer with its SGD slots made; a big scale makes huge logits."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    layer = model.layers[-1]
    layer.kernel.assign(layer.kernel.numpy() * kernel_scale)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def test_a_finite_but_huge_loss_stops_a_member_of_an_exact_graph_group_alone():
    import tensorflow as tf

    from gnas.backend import population

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 2, 16).astype(np.int32)
    epoch = population._make_epoch([_tiny_model(), _tiny_model(1e12)], batch=8)
    order = rng.permutation(16).astype(np.int32)
    finite, bad = population.run_epoch(epoch, tf.constant(x), tf.constant(y),
                                       tf.constant(np.stack([order, order])), 2, 8, "2 networks", (1, 1))
    assert [bool(f) for f in finite] == [True, False]
    assert 1e6 < float(bad[1]) < float("inf")  # finite, but diverged


def test_an_epoch_in_slices_trains_as_one_slice_and_reports_every_slice(monkeypatch):
    """Slicing an epoch (so that an interrupt lands within a fraction of a second) changes no bit."""
    import tensorflow as tf

    from gnas.backend import population
    from gnas.runs import heartbeat

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64).astype(np.int32)
    order = tf.constant(rng.permutation(64)[None].astype(np.int32))
    whole, sliced = _tiny_model(), _tiny_model()
    population.run_epoch(population._make_epoch([whole], batch=4), tf.constant(x), tf.constant(y),
                         order, 1, 4, "1 network", (1, 1))
    monkeypatch.setattr(heartbeat, "SLICE_S", 1e-9)  # every next slice is one batch
    beats: list[heartbeat.Beat] = []
    epoch = population._make_epoch([sliced], batch=4)
    with heartbeat.listening(beats.append):
        population.run_epoch(epoch, tf.constant(x), tf.constant(y), order, 1, 4, "1 network", (1, 1))
    assert [b.batch for b in beats] == [4, *range(5, 17)] and beats[-1].batches == 16
    assert epoch.experimental_get_tracing_count() == 1
    for a, b in zip(whole.get_weights(), sliced.get_weights()):
        np.testing.assert_array_equal(a, b)
