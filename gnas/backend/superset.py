"""Dense family: a whole group trained as one masked superset graph, traced once per shape.

Tracing P exact member graphs into one step removes the per-step overhead, but
the step still runs P times as many small ops as one network, and every new
group traces anew. Here every member of a group is a slice of one superset: per
stage, node slots padded to the group's largest live-node count, each node a
dense layer whose kernel has shape ``[P, in, out]`` and runs as one batched
``einsum`` over the members; which slots exist, which take the stage input,
which feed which and which are summed into the output are 0/1 masks held in
variables. A new group of the same shape signature only assigns new values to
those variables, so the traced epoch is reused: one trace per shape, not per
group.

Members stay independent of their mates, exactly at a fixed thread count:

* a member's slice of every kernel is its own: the batched matmul computes each
  member from its own weights and inputs, and the loss is the sum of the
  members' losses, so a member's gradient is the gradient of its own loss;
* padding adds exact zeros only: a padded node's kernel and bias are zero and
  stay zero (its gradient is masked), and a mask of 0 multiplies the term away,
  so a member's sums are the sums its own graph makes (``x + 0.0 == x``);
* a narrower member's stage is padded with units whose weights are zero and stay
  zero (their outputs and gradients are masked too); a matmul over a padded
  inner dimension adds exact zeros, which on the CPU kernels measured leaves
  every sum bit for bit as it was (the tests check a member against itself in a
  wider group);
* each member starts from the weights its own Keras model is built with from its
  own seed, draws its own batch order, and has its own SGD learning rate and
  momentum, applied with Keras' SGD update (``m = momentum m - lr g; w += m``);
* a group of one runs as two slots, the second an empty member that never
  trains (inactive, learning rate 0): TensorFlow's batched matmul takes another
  kernel for a batch of one, whose rounding differs on some CPUs, so a member
  trained alone would not match itself trained with a mate;
* a member whose loss diverges (not finite, or huge:
  :func:`gnas.backend.trainer.loss_diverged`) is frozen from that step on (its
  updates are selected away, not multiplied, so its NaN cannot spread) and fails.

The loss is Keras' (the cross-entropy of the softmax's logits, which Keras takes
from the softmax layer of its own graph, or the mean squared error), so a member
trains as its Keras model on the same batches would, up to the rounding of one
matmul kernel against another.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from gnas.backend.trainer import loss_diverged
from gnas.genome.architecture import Architecture
from gnas.runs import heartbeat

_CACHE_SIZE = 8  # superset shapes kept traced at once
_MIN_MEMBERS = 2  # a batch of one takes another matmul kernel (see the module docstring)


@dataclass(frozen=True)
class Shape:
    """What one traced superset serves: groups with equal shapes reuse its trace."""

    members: int
    inputs: int
    widths: tuple[int, ...]
    slots: tuple[int, ...]
    outputs: int
    batch: int
    classification: bool


def applies(archs: Sequence[Architecture]) -> bool:
    """Whether ``archs`` can train as one superset: dense, in float32, one number of stages."""
    if not archs or keras.config.dtype_policy().name != "float32":
        return False
    first = archs[0]
    return all(a.family == "dense" and a.task == first.task and a.n_outputs == first.n_outputs
               and a.input_shape == first.input_shape and len(a.stages) == len(first.stages)
               for a in archs)


def shape_of(archs: Sequence[Architecture], batch: int) -> Shape:
    """The superset shape of a group: per stage position, the widest stage and most live nodes.

    At least two member slots, so that a member alone runs through the kernels a
    group runs through; the slots past ``len(archs)`` hold empty members.
    """
    first = archs[0]
    return Shape(members=max(_MIN_MEMBERS, len(archs)), inputs=int(np.prod(first.input_shape)),
                 widths=tuple(max(a.stages[pos].width for a in archs)
                              for pos in range(len(first.stages))),
                 slots=tuple(max(a.stages[pos].nodes for a in archs)
                             for pos in range(len(first.stages))),
                 outputs=first.n_outputs, batch=batch,
                 classification=first.task == "classification")


def superset_for(traced: dict[Shape, "Superset"], shape: Shape) -> "Superset":
    """The traced superset of ``shape``, made on first use and kept in ``traced`` for the next groups.

    ``traced`` is the evaluator's own (:attr:`gnas.backend.evaluator.Evaluator.supersets`);
    the oldest shape goes first once it holds ``_CACHE_SIZE``.
    """
    if shape not in traced:
        if len(traced) >= _CACHE_SIZE:
            traced.pop(next(iter(traced)))
        traced[shape] = Superset(shape)
    return traced[shape]


class Superset:
    """Variables and traced functions of one superset shape."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        p = shape.members

        def var(dims, dtype=tf.float32):
            return tf.Variable(tf.zeros(dims, dtype), trainable=False)

        # Per stage and node slot: ``inputs[s][j]``, the kernel applied to the stage input,
        # and ``nodes[s][j]``, the one applied to the sum of the predecessors. Where the
        # stage input is as wide as the stage, one kernel serves both roles (a Keras
        # node's kernel has that shape either way) and ``nodes[s][j]`` is None, as it
        # is for slot 0, which has no predecessors.
        self.inputs, self.nodes, self.biases = [], [], []
        self.src, self.sink, self.live, self.edge, self.units = [], [], [], [], []
        fan_in = shape.inputs
        for width, slots in zip(shape.widths, shape.slots):
            merged = fan_in == width
            self.inputs.append([var([p, fan_in, width]) for _ in range(slots)])
            self.nodes.append([None if merged or j == 0 else var([p, width, width])
                               for j in range(slots)])
            self.biases.append([var([p, 1, width]) for _ in range(slots)])
            self.src.append(var([p, slots]))
            self.sink.append(var([p, slots]))
            self.live.append(var([p, slots]))
            self.edge.append(var([p, slots, slots]))
            self.units.append(var([p, 1, width]))  # 1 for the member's own units
            fan_in = width
        self.head_kernel = var([p, fan_in, shape.outputs])
        self.head_bias = var([p, 1, shape.outputs])
        # A weight's gradient is multiplied by its mask, read in the traced step:
        # (stage, slot, "live" | "src" | "nodes"), or the head's rows.
        self.weights, self.grad_masks = [], []
        for s, slots in enumerate(shape.slots):
            for j in range(slots):
                if self.nodes[s][j] is None:
                    self.weights.append(self.inputs[s][j])
                    self.grad_masks.append((s, j, "live"))
                else:
                    self.weights += [self.inputs[s][j], self.nodes[s][j]]
                    self.grad_masks += [(s, j, "src"), (s, j, "nodes")]
                self.weights.append(self.biases[s][j])
                self.grad_masks.append((s, j, "live"))
        self.weights += [self.head_kernel, self.head_bias]
        self.grad_masks += [(len(shape.slots) - 1, 0, "head"), None]
        self.momenta = [var(w.shape) for w in self.weights]
        self.learning_rate = var([p, 1, 1])
        self.momentum = var([p, 1, 1])
        self.active = tf.Variable(tf.ones([p], tf.bool), trainable=False)
        self.loaded = p  # members of the group loaded last; the slots past them are empty
        # Partials, not bound methods: TensorFlow counts traces per code object over
        # all instances and warns on stderr when supersets of several shapes each
        # trace once, as they must; a partial is counted on its own.
        self.epoch = tf.function(functools.partial(Superset._epoch, self))
        self.totals = tf.function(functools.partial(Superset._totals, self))

    # -- loading and reading back -------------------------------------------------------

    def load(self, archs: Sequence[Architecture], models: Sequence[keras.Model],
             momenta: Sequence[dict[str, np.ndarray] | None] | None = None) -> None:
        """Masks, hyper-parameters and initial weights of a group; optimiser state reset.

        Slots past ``len(archs)`` stay empty: zero masks and weights, learning rate
        and momentum 0, inactive, so they neither train nor touch the sums of the others.
        ``momenta`` (per member, by :func:`gnas.backend.checkpoint.variable_name`)
        is where a member's momentum does not start at 0: a promotion continuing
        its previous rung.
        """
        shape = self.shape
        pad = shape.members - len(archs)
        for s, (width, slots) in enumerate(zip(shape.widths, shape.slots)):
            src = np.zeros([shape.members, slots], np.float32)
            sink, live = np.zeros_like(src), np.zeros_like(src)
            edge = np.zeros([shape.members, slots, slots], np.float32)
            units = np.zeros([shape.members, 1, width], np.float32)
            inputs = [np.zeros(v.shape, np.float32) for v in self.inputs[s]]
            nodes = [None if v is None else np.zeros(v.shape, np.float32) for v in self.nodes[s]]
            biases = [np.zeros(v.shape, np.float32) for v in self.biases[s]]
            for k, (arch, model) in enumerate(zip(archs, models)):
                stage = arch.stages[s]
                live[k, :stage.nodes] = 1.0
                units[k, 0, :stage.width] = 1.0
                for j in range(stage.nodes):
                    source = not stage.predecessors(j)
                    src[k, j] = float(source)
                    kernel, bias = model.get_layer(f"s{stage.index}_n{j}_dense").get_weights()
                    rows, cols = kernel.shape
                    (inputs if source or nodes[j] is None else nodes)[j][k, :rows, :cols] = kernel
                    biases[j][k, 0, :cols] = bias
                for j in stage.sinks():
                    sink[k, j] = 1.0
                for i, j in stage.edges:
                    edge[k, i, j] = 1.0
            for v, value in zip(self.inputs[s] + self.nodes[s] + self.biases[s],
                                inputs + nodes + biases):
                if v is not None:
                    v.assign(value)
            for v, value in ((self.src[s], src), (self.sink[s], sink), (self.live[s], live),
                             (self.edge[s], edge), (self.units[s], units)):
                v.assign(value)
        heads = [model.get_layer("head").get_weights() for model in models]
        head = np.zeros(self.head_kernel.shape, np.float32)
        for k, (kernel, _) in enumerate(heads):
            head[k, :len(kernel)] = kernel
        self.head_kernel.assign(head)
        head_bias = np.zeros(self.head_bias.shape, np.float32)
        for k, (_, bias) in enumerate(heads):
            head_bias[k, 0] = bias
        self.head_bias.assign(head_bias)
        self._load_momenta(archs, models, momenta or [None] * len(archs))
        rates = [[a.learning_rate, a.momentum] for a in archs] + [[0.0, 0.0]] * pad
        rates = np.array(rates, np.float32)[:, :, None, None]
        self.learning_rate.assign(rates[:, 0])
        self.momentum.assign(rates[:, 1])
        self.active.assign(np.arange(shape.members) < len(archs))
        self.loaded = len(archs)

    def store(self, k: int, arch: Architecture, model: keras.Model) -> None:
        """Write member ``k``'s trained weights into its Keras model (for export and scoring)."""
        for s, stage in enumerate(arch.stages):
            for j in range(stage.nodes):
                role = self.inputs if self.nodes[s][j] is None or not stage.predecessors(j) else self.nodes
                layer = model.get_layer(f"s{stage.index}_n{j}_dense")
                rows, cols = layer.kernel.shape
                layer.set_weights([role[s][j][k, :rows, :cols].numpy(),
                                   self.biases[s][j][k, 0, :cols].numpy()])
        head = model.get_layer("head")
        head.set_weights([self.head_kernel[k, :head.kernel.shape[0]].numpy(),
                          self.head_bias[k, 0].numpy()])

    def _placements(self, arch: Architecture, model: keras.Model):
        """(Keras variable, superset variable, index into it) of every weight of one member.

        The same placement :meth:`load` and :meth:`store` use for the weights:
        a node's kernel in ``inputs`` or ``nodes``, its bias, and the head.
        """
        for s, stage in enumerate(arch.stages):
            for j in range(stage.nodes):
                role = self.inputs if self.nodes[s][j] is None or not stage.predecessors(j) else self.nodes
                layer = model.get_layer(f"s{stage.index}_n{j}_dense")
                rows, cols = layer.kernel.shape
                yield layer.kernel, role[s][j], (slice(0, rows), slice(0, cols))
                yield layer.bias, self.biases[s][j], (0, slice(0, cols))
        head = model.get_layer("head")
        yield head.kernel, self.head_kernel, (slice(0, head.kernel.shape[0]),)
        yield head.bias, self.head_bias, (0,)

    def _load_momenta(self, archs: Sequence[Architecture], models: Sequence[keras.Model],
                      momenta: Sequence[dict[str, np.ndarray] | None]) -> None:
        """Every momentum 0, but where a member brings its own (see :meth:`load`)."""
        from gnas.backend.checkpoint import variable_name

        slot = self._momentum_slots()
        values = {ref: np.zeros(m.shape, np.float32) for ref, m in slot.items()}
        for k, (arch, model, own) in enumerate(zip(archs, models, momenta)):
            if not own:
                continue
            for variable, where, index in self._placements(arch, model):
                name = variable_name(variable)
                if name in own:
                    values[where.ref()][(k, *index)] = own[name]
        for ref, value in values.items():
            slot[ref].assign(value)

    def _momentum_slots(self) -> dict[Any, tf.Variable]:
        """Each superset weight's momentum variable, by the weight's reference."""
        return {w.ref(): m for w, m in zip(self.weights, self.momenta)}

    def momenta_of(self, k: int, arch: Architecture, model: keras.Model) -> dict[str, np.ndarray]:
        """Member ``k``'s momentum of each weight of its Keras model, by variable name."""
        from gnas.backend.checkpoint import variable_name

        slot = self._momentum_slots()
        return {variable_name(variable): slot[where.ref()][(k, *index)].numpy()
                for variable, where, index in self._placements(arch, model)}

    # -- the traced computation ---------------------------------------------------------

    def _forward(self, x):
        """Outputs ``[P, B, outputs]`` (logits or regression values) of ``x`` ``[P, B, inputs]``."""
        h = x
        for s, slots in enumerate(self.shape.slots):
            outs = []
            for j in range(slots):
                stage_in = self.src[s][:, j, None, None] * h
                preds = None
                for i in range(j):
                    term = self.edge[s][:, i, j, None, None] * outs[i]
                    preds = term if preds is None else preds + term
                if self.nodes[s][j] is None:
                    z = tf.einsum("pbi,pio->pbo", stage_in if preds is None else stage_in + preds,
                                  self.inputs[s][j])
                else:
                    z = (tf.einsum("pbi,pio->pbo", stage_in, self.inputs[s][j])
                         + tf.einsum("pbi,pio->pbo", preds, self.nodes[s][j]))
                outs.append(tf.nn.relu(z + self.biases[s][j]) * self._mask(s, j, "live"))
            h = outs[0] * self.sink[s][:, 0, None, None]
            for j in range(1, slots):
                h = h + self.sink[s][:, j, None, None] * outs[j]
        return tf.einsum("pbi,pio->pbo", h, self.head_kernel) + self.head_bias

    def _losses(self, out, y):
        """Each member's mean loss over its batch, ``[P]``, as Keras computes it.

        Keras' cross-entropy reads the logits under a softmax output, not the
        clipped probabilities; so does this, or saturated members would train
        differently.
        """
        if self.shape.classification:
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(y, tf.int32), logits=out)
            return tf.reduce_mean(per_sample, axis=1)
        return tf.reduce_mean(tf.reduce_mean(tf.square(y - out), axis=-1), axis=1)

    def _targets(self, y, members: int):
        """Labels ``[P, B]`` or regression targets ``[P, B, outputs]`` of the batch ``y``."""
        if self.shape.classification:
            return tf.reshape(y, [members, -1])
        return tf.reshape(tf.cast(y, tf.float32), [members, -1, self.shape.outputs])

    def _mask(self, s: int, j: int, kind: str):
        """The 0/1 mask of slot ``j`` of stage ``s`` in one role, over its output units.

        ``[P, 1, width]``: a member's own units of a live slot (taking the stage
        input, ``src``, or its predecessors, ``nodes``); ``head``: ``[P, width, 1]``,
        the rows of the head that the last stage's own units feed.
        """
        if kind == "head":
            return tf.transpose(self.units[s], [0, 2, 1])
        live, src = self.live[s][:, j, None, None], self.src[s][:, j, None, None]
        return {"live": live, "src": src, "nodes": live - src}[kind] * self.units[s]

    def _step(self, x, y):
        """One SGD step of every active member on its own batch; the members' losses."""
        with tf.GradientTape() as tape:
            tape.watch(self.weights)
            losses = self._losses(self._forward(x), y)
            total = tf.reduce_sum(tf.where(self.active, losses, tf.zeros_like(losses)))
        grads = tape.gradient(total, self.weights)
        ok = tf.logical_not(loss_diverged(losses))
        keep = tf.logical_and(self.active, ok)[:, None, None]
        for w, m, g, mask in zip(self.weights, self.momenta, grads, self.grad_masks):
            if mask is not None:
                g = g * self._mask(*mask)
            new_m = m * self.momentum - g * self.learning_rate
            m.assign(tf.where(keep, new_m, m))
            w.assign(tf.where(keep, w + new_m, w))
        self.active.assign(keep[:, 0, 0])
        return losses

    def _epoch(self, x_all, y_all, orders, first, count, finite, bad):
        """Steps ``first`` to ``first + count`` of an epoch, every member on its own order
        ``orders[k]``; the last batch is the remainder.

        Takes and returns per member whether no loss diverged so far and the first
        one that did; :meth:`fit` runs an epoch as slices of it (one trace).
        """
        p = self.shape.members
        batch = self.shape.batch
        n = tf.shape(orders)[1]
        for i in tf.range(first, first + count):
            idx = orders[:, i * batch:tf.minimum((i + 1) * batch, n)]
            x = tf.gather(x_all, idx)
            y = self._targets(tf.gather(y_all, idx), p)
            losses = self._step(x, y)
            ok = tf.logical_not(loss_diverged(losses))
            bad = tf.where(tf.logical_and(finite, tf.logical_not(ok)), losses, bad)
            finite = tf.logical_and(finite, ok)
        return finite, bad

    def _totals(self, x_all, y_all):
        """Per member: summed loss and summed error (misclassified, or MAE) over the split."""
        p = self.shape.members
        n = tf.shape(x_all)[0]
        batch = 256
        loss_sum = tf.zeros([p], tf.float64)
        err_sum = tf.zeros([p], tf.float64)
        for i in tf.range((n + batch - 1) // batch):
            x = x_all[i * batch:tf.minimum((i + 1) * batch, n)]
            size = tf.shape(x)[0]
            out = self._forward(tf.broadcast_to(x[None], [p, size, self.shape.inputs]))
            y = y_all[i * batch:tf.minimum((i + 1) * batch, n)]
            y = self._targets(tf.broadcast_to(y[None], tf.concat([[p], tf.shape(y)], 0)), p)
            loss_sum += tf.cast(self._losses(out, y), tf.float64) * tf.cast(size, tf.float64)
            if self.shape.classification:
                miss = tf.cast(tf.argmax(out, axis=-1, output_type=tf.int32) != tf.cast(y, tf.int32),
                               tf.float64)
                err_sum += tf.reduce_sum(miss, axis=1)
            else:
                err = tf.reduce_mean(tf.cast(tf.abs(y - out), tf.float64), axis=-1)
                err_sum += tf.reduce_sum(err, axis=1)
        return loss_sum, err_sum

    # -- driving it ---------------------------------------------------------------------

    def fit(self, x: np.ndarray | tf.Tensor, y: np.ndarray | tf.Tensor,
            orders: Sequence[np.ndarray], what: str = "", which: tuple[int, int] = (1, 1)
            ) -> tuple[np.ndarray, np.ndarray]:
        """One epoch on ``orders`` (one permutation per member): (finite per member, first bad loss).

        ``x`` and ``y`` may be tensors already, so that a group's epochs copy the
        training split into TensorFlow once. Empty slots read the first member's order.
        The epoch runs in slices of a fraction of a second each, the progress told
        of each (``what`` trains, epoch ``which[0]`` of ``which[1]``), so that an
        interrupt lands between two of them.
        """
        orders = list(orders) + [orders[0]] * (self.shape.members - len(orders))
        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
        order = tf.constant(np.stack(orders).astype(np.int32))
        batches = (len(orders[0]) + self.shape.batch - 1) // self.shape.batch
        finite, bad = tf.ones([self.shape.members], tf.bool), tf.zeros([self.shape.members])
        for first, count in heartbeat.Slices(batches):
            finite, bad = self.epoch(x, y, order, tf.constant(first), tf.constant(count), finite, bad)
            heartbeat.beat(what or f"{self.loaded} networks", which[0], which[1], first + count, batches)
        return finite.numpy()[:self.loaded], bad.numpy()[:self.loaded]

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per member: mean loss and error on the split ``(x, y)``."""
        loss_sum, err_sum = self.totals(tf.constant(x), tf.constant(y))
        return loss_sum.numpy()[:self.loaded] / len(x), err_sum.numpy()[:self.loaded] / len(x)


def flat(x: np.ndarray) -> np.ndarray:
    """Samples as the dense family's ``Flatten`` sees them: one row of features each."""
    return x.reshape(len(x), -1).astype(np.float32, copy=False)
