"""Rebuild a network with fewer units and carry the surviving weights over.

Two ways a network gets narrower: a unit cut (:func:`shrink`, a whole stage
loses the same units) and the compaction of a row, column or block mask
(:func:`compact`, each group of summed nodes loses the positions its masks
made constant or unread).

A unit (Dense) or filter (Conv) cut is physical: the network is built again with
the smaller widths and every kept weight is copied into it, so ``count_params``,
the ``.keras`` file and the FLOPs all drop, unlike a mask, whose zeros are stored.

Nodes of a stage sum their predecessors and the sinks are summed into the stage
output, so a stage's nodes share one set of unit positions: removing unit ``u``
removes output ``u`` of every node of the stage and input row ``u`` of every
layer that reads a sum of them (non-source nodes of the stage, the source nodes
of the next stage, or the head). :func:`shrink` does exactly that; with the same
kept units the rebuilt network computes what the original computes once the
removed units' outgoing weights are zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from gnas.genome.architecture import Architecture

Builder = Callable[[Architecture], keras.Model]


def _take(array: np.ndarray, rows: Sequence[int] | None, cols: Sequence[int] | None) -> np.ndarray:
    """Slice a kernel's input axis (second to last) and output axis (last)."""
    out = array if rows is None else np.take(array, rows, axis=-2)
    return out if cols is None else np.take(out, cols, axis=-1)


def shrink(model: keras.Model, arch: Architecture, new_arch: Architecture,
           keep: Mapping[int, Sequence[int]], build: Builder) -> keras.Model:
    """``model`` (of ``arch``) rebuilt as ``new_arch`` keeping units ``keep[stage index]``.

    ``new_arch`` must be ``arch`` with ``width = len(keep[s])`` for every stage in
    ``keep``; stages not in ``keep`` keep all their units.
    """
    new = build(new_arch)
    kind = "conv" if arch.family == "conv" else "dense"
    stage_in: Sequence[int] | None = None  # kept positions of the previous stage's output
    for stage in arch.stages:
        out = keep.get(stage.index)
        out = None if out is None else sorted(int(u) for u in out)
        for node in range(stage.nodes):
            rows = out if stage.predecessors(node) else stage_in
            name = f"s{stage.index}_n{node}"
            weights = model.get_layer(f"{name}_{kind}").get_weights()
            kernel, rest = weights[0], weights[1:]
            new.get_layer(f"{name}_{kind}").set_weights(
                [_take(kernel, rows, out)] + [w if out is None else w[out] for w in rest])
            if kind == "conv":
                bn = model.get_layer(f"{name}_bn").get_weights()
                new.get_layer(f"{name}_bn").set_weights([w if out is None else w[out] for w in bn])
        stage_in = out
    kernel, bias = model.get_layer("head").get_weights()
    new.get_layer("head").set_weights([_take(kernel, stage_in, None), bias])
    return new


def unit_saliency(model: keras.Model, arch: Architecture, stage_index: int,
                  grads: Mapping[str, np.ndarray]) -> np.ndarray:
    """First-order Taylor saliency of each unit of a stage: ``sum |w * dL/dw|`` over its outputs.

    Summed over every node of the stage (they share the unit positions), over the
    weights that produce the unit: its kernel column (all input rows and, for a
    conv, the 3 x 3 window).
    """
    kind = "conv" if arch.family == "conv" else "dense"
    stage = next(s for s in arch.stages if s.index == stage_index)
    total = np.zeros(stage.width)
    for node in range(stage.nodes):
        name = f"s{stage_index}_n{node}_{kind}"
        w = model.get_layer(name).kernel.numpy()
        g = grads[name]
        total += np.abs(w * g).reshape(-1, w.shape[-1]).sum(axis=0)
    return total


# ------------------------------------------------------------ compaction ---
# Row, column and block masks zero weights inside layers of unchanged shape.
# Where they zero a whole kernel column (a unit or filter), the unit's output no
# longer depends on the input: it is the constant ReLU(bias) (dense) or
# ReLU(BN(0)) (conv), which adds ``constant * W[u, :]`` to each dense reader's
# pre-activation and so folds into that reader's bias exactly. Where every
# reader ignores an input position (a zeroed row over the columns it keeps),
# the producing unit is used by nobody. Either way the position can go.
#
# Nodes of a stage are summed, and an ``Add`` needs equal unit positions, so
# nodes whose outputs meet in one sum share one set of positions (a
# *component*); a position leaves a component only when every sum of the
# component can do without it. A constant read by a conv layer is not a bias
# (the zero padding makes its contribution position-dependent), so such a unit
# stays unless its constant is 0 or the conv ignores it.

STRUCTURED_MASKS = ("row", "column", "block")


@dataclass
class _Sum:
    producers: list[str]            # node prefixes whose outputs are summed
    consumers: list[str]            # kernel layers that read the sum


@dataclass
class Compaction:
    """What a compacted network keeps: positions per component and the folded biases.

    ``columns[prefix]`` and ``rows[layer]`` are the kept output positions of a
    node and the kept input positions of a kernel layer (None: all of them);
    ``biases`` the readers' biases with the removed constants folded in;
    ``params`` and ``flops`` the size of the network :func:`compact` builds,
    ``zeros`` the masked weights it still stores (inside kept units).
    """

    columns: dict[str, list[int]]
    rows: dict[str, list[int] | None]
    biases: dict[str, np.ndarray]
    params: int
    flops: int
    zeros: int

    @property
    def params_nonzero(self) -> int:
        return self.params - self.zeros


def _kind(arch: Architecture) -> str:
    return "conv" if arch.family == "conv" else "dense"


def _graph(arch: Architecture) -> tuple[list[_Sum], dict[str, tuple[int, int]]]:
    """Every sum of unit positions and its readers; each node's (stage, node) by prefix."""
    kind, sums, nodes = _kind(arch), [], {}
    for pos, stage in enumerate(arch.stages):
        pre = lambda n: f"s{stage.index}_n{n}"  # noqa: E731
        for n in range(stage.nodes):
            nodes[pre(n)] = (stage.index, n)
            if stage.predecessors(n):
                sums.append(_Sum([pre(p) for p in stage.predecessors(n)], [f"{pre(n)}_{kind}"]))
        if pos + 1 < len(arch.stages):
            nxt = arch.stages[pos + 1]
            readers = [f"s{nxt.index}_n{n}_{kind}" for n in nxt.sources()]
        else:
            readers = ["head"]
        sums.append(_Sum([pre(n) for n in stage.sinks()], readers))
    return sums, nodes


def _constants(model: keras.Model, arch: Architecture, prefix: str, rows: Sequence[int] | None,
               dropped_in: np.ndarray | None) -> np.ndarray:
    """Per output unit of a node: its constant output when its kernel column is zero, else NaN.

    Only the kept input ``rows`` count (None: all of them): a unit that reads
    nothing but positions compaction itself removed is a constant too. Those
    positions were constants (``dropped_in``: their summed value, 0 where kept),
    so a dense unit's constant is ReLU(bias + dropped_in @ W); a conv never
    reads a removed constant other than 0, so its constant stays ReLU(BN(0)).
    """
    layer = model.get_layer(f"{prefix}_{_kind(arch)}")
    kernel = layer.kernel.numpy()
    kept = kernel if rows is None else np.take(kernel, rows, axis=-2)
    dead = ~(kept.reshape(-1, kernel.shape[-1]) != 0).any(axis=0)
    if arch.family == "conv":
        bn = model.get_layer(f"{prefix}_bn")
        gamma, beta, mean, var = (w.numpy() for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
        value = beta - gamma * mean / np.sqrt(var + bn.epsilon)
    else:
        value = layer.bias.numpy().astype("float64")
        if dropped_in is not None:
            reads = kernel != 0
            unknown = (np.isnan(dropped_in)[:, None] & reads).any(axis=0)
            value = value + np.nan_to_num(dropped_in) @ kernel.astype("float64")
            dead &= ~unknown
    return np.where(dead, np.maximum(value, 0.0), np.nan)


def _used_rows(kernel: np.ndarray, columns: Sequence[int] | None) -> np.ndarray:
    """Per input position of a kernel: does any kept column read it?"""
    k = kernel if columns is None else np.take(kernel, columns, axis=-1)
    k = np.moveaxis(k, -2, 0).reshape(kernel.shape[-2], -1)
    return (k != 0).any(axis=1)


def plan_compaction(model: keras.Model, arch: Architecture) -> Compaction:
    """Which unit positions a masked network can lose exactly, and the biases that absorb them."""
    kind = _kind(arch)
    sums, nodes = _graph(arch)
    parent = {p: p for p in nodes}

    def find(p: str) -> str:
        while parent[p] != p:
            p = parent[p]
        return p

    for s in sums:
        for p in s.producers[1:]:
            parent[find(p)] = find(s.producers[0])
    width = {st.index: st.width for st in arch.stages}
    keep = {c: set(range(width[nodes[c][0]])) for c in {find(p) for p in nodes}}
    reads = {c: s for s in sums for c in s.consumers}  # kernel layer -> the sum it reads
    const = {p: np.full(width[nodes[p][0]], np.nan) for p in nodes}
    kernels = {name: model.get_layer(name).kernel.numpy() for s in sums for name in s.consumers}
    by_comp: dict[str, list[_Sum]] = {}
    for s in sums:
        by_comp.setdefault(find(s.producers[0]), []).append(s)

    def cols(layer: str) -> list[int] | None:
        return None if layer == "head" else sorted(keep[find(layer.rsplit("_", 1)[0])])

    def droppable(comp: str, u: int, used: dict[str, np.ndarray]) -> bool:
        for s in by_comp[comp]:
            readers = [c for c in s.consumers if used[c][u]]
            if not readers:
                continue
            ks = [const[p][u] for p in s.producers]
            if any(np.isnan(ks)):
                return False
            if sum(ks) != 0 and any(c != "head" and kind == "conv" for c in readers):
                return False
        return True

    def update_constants() -> None:
        """Constants of the kept positions, given the input rows dropped so far (dropped ones stay)."""
        for p in nodes:
            s = reads.get(f"{p}_{kind}")
            rows, dropped_in = None, None
            if s is not None:
                comp = find(s.producers[0])
                rows = sorted(keep[comp])
                dropped_in = np.sum([const[q] for q in s.producers], axis=0)
                dropped_in[rows] = 0.0
            kept = np.zeros(len(const[p]), dtype=bool)
            kept[sorted(keep[find(p)])] = True
            const[p] = np.where(kept, _constants(model, arch, p, rows, dropped_in), const[p])

    changed = True
    while changed:  # a dropped position can leave a column unread or a unit constant: to a fixed point
        changed = False
        update_constants()
        used = {c: _used_rows(k, cols(c)) for c, k in kernels.items()}
        for comp, positions in keep.items():
            for u in sorted(positions):
                if len(positions) > 1 and droppable(comp, u, used):
                    positions.discard(u)
                    changed = True
    biases = {}
    for comp, s_list in by_comp.items():
        dropped = sorted(set(range(width[nodes[comp][0]])) - keep[comp])
        for s in s_list:
            for c in s.consumers:
                if kind == "conv" and c != "head":
                    continue  # droppable() left only zero constants or unread rows here
                b = biases.setdefault(c, model.get_layer(c).bias.numpy().astype("float64"))
                for u in dropped:
                    ks = [const[p][u] for p in s.producers]
                    if not any(np.isnan(ks)):
                        b += float(sum(ks)) * kernels[c][u, :]
    columns = {p: sorted(keep[find(p)]) for p in nodes}
    rows = _rows(arch, columns, find)
    params, flops = _size(model, arch, columns, rows)
    zeros = sum(int((_take(model.get_layer(name).kernel.numpy(), r, columns.get(name.rsplit("_", 1)[0]))
                     == 0).sum()) for name, r in rows.items())
    return Compaction(columns, rows, {k: v.astype("float32") for k, v in biases.items()}, params, flops, zeros)


def _rows(arch: Architecture, columns: dict[str, list[int]], find) -> dict[str, list[int] | None]:
    """Kept input positions of every kernel layer: those of the component it reads."""
    kind, rows = _kind(arch), {}
    stage_in: list[int] | None = None
    for stage in arch.stages:
        for n in range(stage.nodes):
            preds = stage.predecessors(n)
            rows[f"s{stage.index}_n{n}_{kind}"] = columns[f"s{stage.index}_n{preds[0]}"] if preds else stage_in
        stage_in = columns[f"s{stage.index}_n{stage.sinks()[0]}"]
    rows["head"] = stage_in
    return rows


def _size(model: keras.Model, arch: Architecture, columns, rows) -> tuple[int, int]:
    """Parameters and FLOPs of the compacted network, counted as :func:`complexity` counts them."""
    kind, params, flops = _kind(arch), 0, 0
    for prefix, cols in columns.items():
        layer = model.get_layer(f"{prefix}_{kind}")
        r = rows[layer.name]
        cin = layer.kernel.shape[-2] if r is None else len(r)
        if kind == "conv":
            h, w = layer.output.shape[1:3]
            params += 9 * cin * len(cols) + 4 * len(cols)
            flops += 2 * 9 * cin * len(cols) * h * w
        else:
            params += cin * len(cols) + len(cols)
            flops += 2 * cin * len(cols)
    head = model.get_layer("head")
    features = head.kernel.shape[0] if rows["head"] is None else len(rows["head"])
    return params + features * head.units + head.units, flops + 2 * features * head.units


def _like(model: keras.Model, name: str, **changes) -> keras.layers.Layer:
    layer = model.get_layer(name)
    return type(layer).from_config({**layer.get_config(), **changes})


def compact(model: keras.Model, arch: Architecture) -> tuple[keras.Model, Compaction]:
    """``model`` rebuilt without the unit positions a row, column or block mask removed.

    Same layer names and configuration, narrower layers; what the original
    computes up to float rounding (the removed constants live on in the biases).
    Kept positions keep their weights, zeros included: those stay stored dense.
    """
    plan = plan_compaction(model, arch)
    kind, names = _kind(arch), {layer.name for layer in model.layers}
    inputs = keras.Input(model.input_shape[1:], name="input")
    x = _like(model, "flatten")(inputs) if "flatten" in names else inputs
    for stage in arch.stages:
        if f"s{stage.index}_pool" in names:
            x = _like(model, f"s{stage.index}_pool")(x)
        outs: dict[int, object] = {}
        for n in range(stage.nodes):
            prefix, preds = f"s{stage.index}_n{n}", stage.predecessors(n)
            h = x if not preds else (outs[preds[0]] if len(preds) == 1 else
                                     _like(model, f"{prefix}_in")([outs[p] for p in preds]))
            width = len(plan.columns[prefix])
            if kind == "conv":
                h = _like(model, f"{prefix}_conv", filters=width)(h)
                h = _like(model, f"{prefix}_bn")(h)
            else:
                h = _like(model, f"{prefix}_dense", units=width)(h)
            outs[n] = _like(model, f"{prefix}_relu")(h)
        sinks = stage.sinks()
        x = outs[sinks[0]] if len(sinks) == 1 else _like(model, f"s{stage.index}_out")([outs[n] for n in sinks])
    if "gap" in names:
        x = _like(model, "gap")(x)
    new = keras.Model(inputs, _like(model, "head")(x), name=model.name)
    for prefix, cols in plan.columns.items():
        name = f"{prefix}_{kind}"
        weights = model.get_layer(name).get_weights()
        kernel = _take(weights[0], plan.rows[name], cols)
        rest = [plan.biases[name][cols]] if name in plan.biases else [w[cols] for w in weights[1:]]
        new.get_layer(name).set_weights([kernel, *rest])
        if kind == "conv":
            new.get_layer(f"{prefix}_bn").set_weights([w[cols] for w in model.get_layer(f"{prefix}_bn").get_weights()])
    kernel, bias = model.get_layer("head").get_weights()
    new.get_layer("head").set_weights([_take(kernel, plan.rows["head"], None), plan.biases.get("head", bias)])
    return new, plan
