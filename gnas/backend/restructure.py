"""Rebuild a network with fewer units per stage and carry the surviving weights over.

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
