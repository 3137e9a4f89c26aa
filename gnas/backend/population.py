"""Train a group of candidates at once.

On a CPU a narrow network spends most of a training step in per-step and per-op
overhead, so P networks trained in one traced ``tf.function`` step train at a
multiple of the throughput of P one-at-a-time fits. Two ways:

* dense members train as one masked superset traced once per shape
  (:mod:`gnas.backend.superset`): every layer one batched ``einsum`` over the
  members, a new group of the same shape reusing the trace;
* the others (conv) train as their exact Keras graphs in one step.

Either way each member starts from the weights its own Keras model is built
with from its own seed (exactly as the solo path builds it), has its own
optimiser (its own learning rate and momentum) and its own batch order, and its
gradient is taken from its own loss only, so a member's training is the same
computation whoever shares its group: its score does not depend on its group
mates.

The batch order is each member's own permutation per epoch, drawn from its seed
with NumPy, not Keras' ``tf.data`` shuffle; a fused evaluation therefore equals a
Keras ``fit`` on the same order (the tests check it) and differs from the solo
path by the spread of one shuffle against another (README, "Training a
generation at once").

A member whose loss diverges (:func:`gnas.backend.trainer.loss_diverged`: not
finite, or huge) stops training from then on and fails with the solo path's
reason; a member that cannot be built fails alone. If the
shared step itself fails (out of memory, say), every member is trained again
alone, which gives each the result it would have had in the group.
"""
from __future__ import annotations

import functools
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from gnas.backend import superset
from gnas.backend.checkpoint import TrainingState, set_optimizer_momenta
from gnas.backend.inheritance import inherited_metrics, layer_weights
from gnas.backend.trainer import compile_model, diverged_reason, loss_diverged, validation_diverged
from gnas.errors import EvaluationFailed
from gnas.genome.architecture import Architecture, complexity
from gnas.genome.space import str_to_bits
from gnas.runs import heartbeat
from gnas.records import EvalResult, EvalTask, failed, fidelity_metrics

if TYPE_CHECKING:
    from gnas.backend.evaluator import Evaluator


@dataclass
class _Member:
    """One candidate of a group while it trains."""

    task: EvalTask
    arch: Architecture | None = None
    model: keras.Model | None = None
    rng: np.random.Generator | None = None
    error: str = ""
    val: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    mem: dict[str, Any] = field(default_factory=dict)
    state: TrainingState | None = None  # the rung it continues from (successive halving)
    lineage: dict[str, Any] = field(default_factory=dict)  # the layers it inherited


def epoch_order(rng: np.random.Generator, n: int) -> np.ndarray:
    """One member's sample order for one epoch."""
    return rng.permutation(n)


def train_group(evaluator: Evaluator, tasks: Sequence[EvalTask], *, fuse_dense: bool = True) -> list[EvalResult]:
    """Train and score ``tasks`` together; one EvalResult per task, in task order.

    ``evaluator`` is a :class:`gnas.backend.evaluator.Evaluator`; every member of
    one group must train with the same batch size (groups are formed so).
    ``fuse_dense=False`` trains dense members as their exact graphs too, the
    path the superset is measured against.
    """
    start = time.perf_counter()
    members = [_prepare(evaluator, task) for task in tasks]
    epochs = tasks[0].epochs_to_train(evaluator.cfg.train.epochs)  # groups share it (Evaluator.group_signature)
    try:
        live = [m for m in members if not m.error]
        if live and fuse_dense and superset.applies([m.arch for m in live]):
            _train_superset(evaluator, live, epochs)
        elif live:
            for m in live:
                _compile(m)
            _fit_together(evaluator, live, epochs)
            scored = [m for m in members if not m.error]
            for m in scored:
                _save_state(m, epochs)
            if scored:
                _score_together(evaluator, scored)
    except EvaluationFailed as exc:  # the group ran past its time limit: every member did
        seconds = (time.perf_counter() - start) / max(1, len(members))
        return [failed(m.task, m.error or str(exc), seconds=seconds, metrics={**m.mem, **m.lineage},
                       **m.extra) for m in members]
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory in the shared step
        if _is_bug(exc):
            raise
        if len(tasks) == 1:
            return [failed(tasks[0], f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start,
                           metrics=members[0].mem, **members[0].extra)]
        # A member's training does not depend on its mates: training each alone
        # gives the same results and fails only the member that breaks.
        return [result for task in tasks
                for result in train_group(evaluator, [task], fuse_dense=fuse_dense)]
    seconds = (time.perf_counter() - start) / max(1, len(members))
    return [_result(evaluator, m, seconds, len(members)) for m in members]


def train_one(evaluator: Evaluator, arch: Architecture, seed: int, epochs: int = 0) -> keras.Model:
    """One network trained exactly as it trains in a group (``epochs``, 0 = ``train.epochs``);
    raises EvaluationFailed."""
    member = _Member(task=EvalTask(key="", genome="", seed=seed), arch=arch)
    member.model = _build(evaluator, arch, seed)
    member.rng = np.random.default_rng(seed)
    epochs = epochs or evaluator.cfg.train.epochs
    if superset.applies([arch]):
        net = _fit_superset(evaluator, [member], epochs)
        if not member.error:
            net.store(0, arch, member.model)
            compile_model(member.model, arch)
    else:
        _compile(member)
        _fit_together(evaluator, [member], epochs)
    if member.error:
        raise EvaluationFailed(member.error)
    return member.model


def _prepare(evaluator: Evaluator, task: EvalTask) -> _Member:
    """Decode and build one member as the solo path does; a build error fails it alone."""
    member = _Member(task=task)
    try:
        arch = evaluator.space.decode(str_to_bits(task.genome))
        member.arch = arch
        params, flops = complexity(arch)
        member.extra = dict(params=params, flops=flops, worker=evaluator.worker, node=evaluator.node)
        member.mem = evaluator.memory_metrics(arch)
        member.model = _build(evaluator, arch, task.seed)
        member.rng = np.random.default_rng(task.seed)
        if task.resume_from:
            _resume(evaluator, member)
        else:
            member.lineage = inherited_metrics(member.model, task)
    except EvaluationFailed as exc:
        member.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bad member must not stop its group
        if _is_bug(exc):
            raise
        member.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    return member


def _resume(evaluator: Evaluator, member: _Member) -> None:
    """Continue where the member's last rung ended: its weights, and its batch order moved on.

    The member's own permutations are drawn one per epoch from its seed, so
    drawing the epochs already trained puts the order where an uninterrupted
    training would be; the momenta go into its optimiser once it is built.
    """
    task = member.task
    state = TrainingState.load(Path(task.checkpoint_from), task.resume_from)
    member.model.set_weights(state.weights)
    member.state = state
    for _ in range(task.resume_from):
        epoch_order(member.rng, len(evaluator.data.x_train))


def _save_state(member: _Member, epochs: int, momenta: dict[str, np.ndarray] | None = None) -> None:
    """Keep the training state a promotion continues from, when the task asks for it
    (``momenta`` when they live outside the model's optimiser, as in the superset)."""
    if member.task.checkpoint and not member.error:
        TrainingState.of(member.model, member.task.resume_from + epochs, momenta).save(
            Path(member.task.checkpoint))


def _compile(member: _Member) -> None:
    """The member's own SGD, its slots made now so that the shared epoch traces once."""
    compile_model(member.model, member.arch)
    member.model.optimizer.build(member.model.trainable_variables)
    if member.state is not None:
        set_optimizer_momenta(member.model, member.state.momenta)


def _train_superset(evaluator: Evaluator, members: list[_Member], epochs: int) -> None:
    """Dense members: train and score them as one superset (:mod:`gnas.backend.superset`)."""
    net = _fit_superset(evaluator, members, epochs)
    scored = [(k, m) for k, m in enumerate(members) if not m.error]
    if not scored:
        return
    for k, m in scored:
        if m.task.checkpoint or m.task.keep_weights:
            net.store(k, m.arch, m.model)
            _save_state(m, epochs, momenta=net.momenta_of(k, m.arch, m.model))
    data = evaluator.data
    losses, errors = net.evaluate(superset.flat(data.x_val), data.y_val)
    for k, m in scored:
        _validated(m, float(losses[k]), float(errors[k]))


def _validated(member: _Member, loss: float, error: float) -> None:
    """Keep a member's validation scores, or fail it when its validation loss diverged."""
    if validation_diverged(loss, error):
        member.error = diverged_reason(loss, float(np.float32(member.arch.learning_rate)), "validation loss")
    else:
        member.val = {"error": error, "loss": loss}


def _fit_superset(evaluator: Evaluator, members: list[_Member], epochs: int) -> superset.Superset:
    """``epochs`` of dense members as one superset; divergence fails a member."""
    archs = [m.arch for m in members]
    net = superset.superset_for(evaluator.supersets, superset.shape_of(archs, evaluator.batch_size(archs[0])))
    net.load(archs, [m.model for m in members],
             momenta=[m.state.momenta if m.state is not None else None for m in members])
    data = evaluator.data
    x, y, n = tf.constant(superset.flat(data.x_train)), tf.constant(data.y_train), len(data.x_train)
    for e in range(epochs):
        finite, bad = net.fit(x, y, [epoch_order(m.rng, n) for m in members],
                              what=_what(len(members)), which=(e + 1, epochs))
        for m, ok, loss in zip(members, finite, bad):
            if not ok and not m.error:
                m.error = diverged_reason(float(loss), float(np.float32(m.arch.learning_rate)))
        if all(m.error for m in members):
            break
    return net


def _what(members: int) -> str:
    """How the progress names a group: ``8 networks``, ``1 network``."""
    return f"{members} network{'s' if members != 1 else ''}"


def _is_bug(exc: Exception) -> bool:
    """Errors that point at gnas rather than at a candidate (as the solo path decides)."""
    return isinstance(exc, (NameError, AttributeError, ImportError))


def _build(evaluator: Evaluator, arch: Architecture, seed: int) -> keras.Model:
    """:meth:`Evaluator.build` without its garbage collection (the group's models are alive).

    The same session reset and seeding, so a member starts from the weights its
    solo evaluation starts from.
    """
    return evaluator.build(arch, seed, free_memory=False)


def _make_epoch(models: list[keras.Model], batch: int):
    """One traced function that trains every model for a slice of an epoch, each on its own order.

    The slice runs inside the graph (no per-step Python), steps ``first`` to
    ``first + count`` of the epoch, each step training every member on its own
    batch of its own order; the last batch is the remainder, as in Keras' ``fit``.
    ``first`` and ``count`` are tensors, so every slice reuses the one trace; the
    epoch is cut into slices so that the process returns to Python (progress, an
    interrupt) every fraction of a second, with the same steps in the same order.
    Takes and returns, per member, whether no loss of the epoch diverged so far
    and the first one that did.
    """

    def epoch(x_all, y_all, orders, first, count, finite, bad):
        n = tf.shape(orders)[1]
        finite, bad = list(finite), list(bad)
        for i in tf.range(first, first + count):
            lo = i * batch
            hi = tf.minimum(lo + batch, n)
            new_finite, new_bad = [], []
            for k, model in enumerate(models):
                idx = orders[k, lo:hi]
                x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
                with tf.GradientTape() as tape:
                    y_pred = model(x, training=True)
                    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, training=True)
                    scaled = model.optimizer.scale_loss(loss)  # mixed precision: loss scaling
                weights = model.trainable_weights
                model.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
                ok = tf.logical_not(loss_diverged(loss))
                new_bad.append(tf.where(tf.logical_and(finite[k], tf.logical_not(ok)), loss, bad[k]))
                new_finite.append(tf.logical_and(finite[k], ok))
            finite, bad = new_finite, new_bad
        return finite, bad

    return _traced(epoch)


def run_epoch(epoch, x_all, y_all, orders, members: int, batch: int, what: str, which: tuple[int, int]):
    """One epoch of a traced slice function (:func:`_make_epoch`), slice by slice.

    Between slices the progress hears where the training stands and a pending
    interrupt lands (``gnas.runs.heartbeat``). ``which`` is (epoch, epochs).
    """
    n = int(orders.shape[1])
    batches = (n + batch - 1) // batch
    finite = [tf.constant(True)] * members
    bad = [tf.constant(0.0)] * members
    for first, count in heartbeat.Slices(batches):
        finite, bad = epoch(x_all, y_all, orders, tf.constant(first), tf.constant(count), finite, bad)
        heartbeat.beat(what, which[0], which[1], first + count, batches)
    return finite, bad


def _traced(fn):
    """``fn`` as a ``tf.function`` counted by TensorFlow as a function of its own.

    A group's traced functions hold the group's own Keras weights, so every
    group traces them once (and only once: their argument shapes stay fixed
    for the whole group). TensorFlow counts traces per code object over every
    function made from it and warns about "retracing" when successive groups
    each trace theirs; that warning would misreport the one trace per group
    and land in the middle of the progress line. A partial is counted on its own
    (as :mod:`gnas.backend.superset` does for its per-shape functions).
    """
    return tf.function(functools.partial(fn))


def _fit_together(evaluator: Evaluator, members: list[_Member], epochs: int) -> None:
    """``epochs`` epochs, every live member in each step; divergence drops a member."""
    data = evaluator.data
    x_all = tf.constant(data.x_train)
    y_all = tf.constant(data.y_train)
    n = len(data.x_train)
    batch = evaluator.batch_size(members[0].arch)
    active = list(members)
    epoch = _make_epoch([m.model for m in active], batch)
    for e in range(epochs):
        orders = tf.constant(np.stack([epoch_order(m.rng, n) for m in active]).astype(np.int32))
        finite, bad = run_epoch(epoch, x_all, y_all, orders, len(active), batch,
                                _what(len(active)), (e + 1, epochs))
        diverged = []
        for m, ok, loss in zip(active, finite, bad):
            if not bool(ok):
                m.error = diverged_reason(float(loss), float(m.model.optimizer.learning_rate.numpy()))
                diverged.append(m)
        if diverged:
            active = [m for m in active if m not in diverged]
            if not active:
                return
            epoch = _make_epoch([m.model for m in active], batch)


def _score_together(evaluator: Evaluator, members: list[_Member], batch: int = 256) -> None:
    """Validation error and loss of every member, in one traced pass over the split.

    The same quantities as :func:`gnas.backend.trainer.score` (1 - accuracy or the
    MAE, and the mean loss), summed over batches of 256 inside the graph, so each
    group traces it once.
    """
    models = [m.model for m in members]
    classification = members[0].arch.task == "classification"

    def totals(x_all, y_all):
        n = tf.shape(x_all)[0]
        sums = [(tf.constant(0.0, tf.float64), tf.constant(0.0, tf.float64)) for _ in models]
        for i in tf.range((n + batch - 1) // batch):
            x = x_all[i * batch:tf.minimum((i + 1) * batch, n)]
            y = y_all[i * batch:tf.minimum((i + 1) * batch, n)]
            size = tf.cast(tf.shape(x)[0], tf.float64)
            new = []
            for model, (loss_sum, err_sum) in zip(models, sums):
                y_pred = model(x, training=False)
                loss = tf.cast(model._compute_loss(x=x, y=y, y_pred=y_pred, training=False), tf.float64)
                if classification:
                    hit = tf.cast(tf.argmax(y_pred, axis=-1), y.dtype) == tf.reshape(y, [-1])
                    err = tf.reduce_sum(1.0 - tf.cast(hit, tf.float64))
                else:
                    diff = tf.abs(tf.reshape(tf.cast(y, y_pred.dtype), tf.shape(y_pred)) - y_pred)
                    err = tf.reduce_mean(tf.cast(diff, tf.float64), axis=-1)
                    err = tf.reduce_sum(err)
                new.append((loss_sum + loss * size, err_sum + err))
            sums = new
        return sums

    data = evaluator.data
    n = len(data.x_val)
    sums = _traced(totals)(tf.constant(data.x_val), tf.constant(data.y_val))
    for m, (loss_sum, err_sum) in zip(members, sums):
        _validated(m, float(loss_sum) / n, float(err_sum) / n)


def _result(evaluator: Evaluator, m: _Member, seconds: float, group: int) -> EvalResult:
    """The member's row, as :meth:`Evaluator.evaluate` writes it."""
    task = m.task
    if m.error:
        return failed(task, m.error, seconds=seconds, metrics={**m.mem, **m.lineage}, **m.extra)
    return EvalResult(key=task.key, genome=task.genome, status="ok", val_error=m.val["error"],
                      val_loss=m.val["loss"], seconds=seconds, kind=task.kind,
                      generation=task.generation,
                      metrics={**m.mem, "pid": os.getpid(), "group": group, **fidelity_metrics(task),
                               **m.lineage},
                      weights=layer_weights(m.model) if task.keep_weights else None, **m.extra)

