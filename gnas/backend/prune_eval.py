"""One pruning attempt: replay base + cuts, fine-tune, score, measure saliency.

A task of kind ``"prune"`` carries ``options`` = the base genome, the ordered list
of connection genes cut so far (the last one being the attempt), the fine-tuning
cycles and the mask settings. The network is rebuilt deterministically:

1. train the base genome with its own seed, exactly as the search trained it;
2. with a mask applied at once (irregular, N:M): choose the masks and fine-tune
   with them (``cycles`` steps);
3. for each cut in order: switch the gene(s) off, build the smaller network, copy
   every surviving layer's weights by node identity, mask, fine-tune; a unit cut
   keeps the stage's most salient units and rebuilds it narrower
   (:mod:`gnas.backend.restructure`); a mask step (row, column, block masks,
   which grow gradually) chooses the masks at its higher sparsity and fine-tunes.

The result is scored on the validation split, and the first-order Taylor
saliency of each still-expressed connection gene is measured for the next
ranking. The options are stored as ``metrics["final_options"]``, so the final
model of a run whose best network is pruned is rebuilt by the same replay.
States already reached in this process are kept (weights only), so a chain of
attempts does not retrain its base each time; the replay from scratch gives the
same numbers, which is what a resumed run or another worker does.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from gnas.pruning import masks as masks_lib
from gnas.pruning import cuts as pruning
from gnas.pruning.records import PruneOptions
from gnas.genome.architecture import Architecture, complexity
from gnas.errors import EvaluationFailed
from gnas.backend import masking, restructure
from gnas.backend.trainer import compile_model, score
from gnas.records import EvalResult, EvalTask, derive_seed, failed
from gnas.genome.space import Bits, str_to_bits

if TYPE_CHECKING:
    from gnas.backend.evaluator import Evaluator

STATES_KEPT = 8  # replayed states an evaluator keeps (Evaluator.prune_states)
SALIENCY_SAMPLES = 512
UNIT_STEP = 0.25  # share of a stage's units one unit cut removes


@dataclass
class Snapshot:
    """A replayed state kept in an evaluator's memory: weights and masks, no model."""

    bits: Bits
    arch: Architecture
    weights: dict[str, list[np.ndarray]]
    masks: masking.Masks
    level: float = 0.0


@dataclass
class _State:
    bits: Bits
    arch: Architecture
    model: keras.Model
    masks: masking.Masks
    level: float = 0.0  # the masks' sparsity


# ------------------------------------------------------------- interface ---
def evaluate_prune(evaluator: Evaluator, task: EvalTask) -> EvalResult:
    """Replay, fine-tune and score one attempt; a failure is a failed result, never a raise."""
    start = time.perf_counter()
    opts = PruneOptions.from_dict(task.options)
    extra: dict[str, Any] = dict(worker=evaluator.worker, node=evaluator.node)
    try:
        base = str_to_bits(opts.base)
        state = replay(evaluator, opts)
        compile_model(state.model, state.arch)
        val = score(state.model, state.arch, evaluator.data.x_val, evaluator.data.y_val)
        sal = gene_saliency(evaluator, state)
        units = unit_cut_saliency(evaluator, state, opts)
        mask_offer = mask_step_saliency(evaluator, state, opts)
    except EvaluationFailed as exc:
        return failed(task, str(exc), seconds=time.perf_counter() - start, **extra)
    except Exception as exc:  # noqa: BLE001 - a bad candidate must not stop the search
        if isinstance(exc, (NameError, AttributeError, ImportError, KeyboardInterrupt)):
            raise
        return failed(task, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                      seconds=time.perf_counter() - start, **extra)
    size = network_size(evaluator, base, state, opts.mask)
    total, active = size["params_stored"], size["params"]
    nm = masks_lib.parse_nm(opts.nm)
    metrics = {"pid": os.getpid(), "saliency": {str(g): s for g, s in sal.items() if isinstance(g, int)},
               "node_saliency": [[list(g), s] for g, s in sal.items() if isinstance(g, tuple)],
               "unit_saliency": [[list(c), s] for c, s in units.items()],
               "mask_saliency": [[list(c), s] for c, s in mask_offer.items()],
               "mask_level": state.level,
               "widths": [st.width for st in state.arch.stages],
               "final_options": opts.final(),
               "params_total": total, "params_nonzero": active, "cuts": pruning.cuts_to_json(opts.cuts),
               **size, "base_key": evaluator.space.key(base),
               "weight_density": masks_lib.density(state.masks)}
    if opts.mask == "nm":
        metrics["nm_holds"] = all(masks_lib.nm_holds(state.model.get_layer(n).kernel.numpy(), *nm)
                                  for n in state.masks)
    return EvalResult(key=task.key, genome=task.genome, status="ok", val_error=val["error"],
                      val_loss=val["loss"], params=active, flops=size["flops"],
                      seconds=time.perf_counter() - start, kind=task.kind, generation=task.generation,
                      pruned_fraction=size["pruned_fraction"], metrics=metrics, **extra)


def network_size(evaluator: Evaluator, base: Bits, state: "_State", mask: str | None = None) -> dict[str, Any]:
    """What shrank, measured on the network: parameters and FLOPs against the unpruned base.

    ``params`` counts the non-zero parameters of the network as saved (what the
    fitness term C counts), ``params_stored`` what its file holds; they differ
    only for weight masks, whose zeros are stored densely. Under a row, column
    or block mask the network is saved compacted (:func:`restructure.compact`),
    so both counts and the FLOPs are the compacted network's. ``pruned_fraction``
    is ``1 - params / params_unpruned`` (negative when a cut made the network
    larger); ``gene_fraction`` is the share of connection genes cut.
    ``node_widths[k][n]`` is the units (filters) of node ``n`` of stage ``k`` in
    the saved network: after compaction the nodes of one stage can differ.
    """
    params_unpruned, flops_unpruned = complexity(evaluator.space.decode(base))
    stages = state.arch.stages
    if mask in restructure.STRUCTURED_MASKS:
        plan = restructure.plan_compaction(state.model, state.arch)
        stored, params, flops = plan.params, plan.params_nonzero, plan.flops
        node_widths = [[len(plan.columns[f"s{st.index}_n{n}"]) for n in range(st.nodes)] for st in stages]
    else:
        stored, params = masking.parameter_counts(state.model, state.masks)
        flops = complexity(state.arch)[1]
        node_widths = state.arch.node_widths()
    return {"params": params, "params_stored": stored, "params_unpruned": params_unpruned,
            "node_widths": node_widths,
            "flops": flops, "flops_unpruned": flops_unpruned,
            "pruned_fraction": 1.0 - params / params_unpruned,
            "flops_fraction": 1.0 - flops / flops_unpruned,
            "gene_fraction": pruning.pruned_fraction(evaluator.space, base, state.bits)}


def rebuild_pruned(evaluator: Evaluator, genome: str, seed: int,
                   options: PruneOptions) -> tuple[keras.Model, Architecture]:
    """The pruned network a store row describes, rebuilt by replaying its cuts.

    Under a row, column or block mask it comes back compacted: the units the
    masks wholly zeroed are gone, so the saved and exported file is smaller.
    """
    state = replay(evaluator, options)
    model = state.model
    if options.mask in restructure.STRUCTURED_MASKS:
        model, _ = restructure.compact(model, state.arch)
    compile_model(model, state.arch)
    return model, state.arch


# ---------------------------------------------------------------- replay ---
def replay(evaluator: Evaluator, opts: PruneOptions) -> _State:
    """Base training, masks, then each cut with its fine-tuning; reuses states in this process."""
    base = str_to_bits(opts.base)
    cuts = list(opts.cuts)
    settings = opts.settings()
    prefix_keys = [_cache_key(base, cuts[:k], settings) for k in range(len(cuts) + 1)]
    done = max((k for k in range(len(cuts) + 1) if prefix_keys[k] in evaluator.prune_states), default=-1)
    if done >= 0:
        state = _restore(evaluator, evaluator.prune_states[prefix_keys[done]], base)
    else:
        state = _train_base(evaluator, base, opts)
        _remember(evaluator.prune_states, prefix_keys[0], state)
        done = 0
    for k in range(done, len(cuts)):
        if pruning.is_unit_cut(cuts[k]):
            state = _narrow(evaluator, state, cuts[k], opts, step=k + 1)
        elif pruning.is_mask_cut(cuts[k]):
            state.level = opts.mask_level(cuts[:k + 1])
            state = _masked_and_tuned(evaluator, state, opts, step=k + 1)
        else:
            state = _cut(evaluator, state, cuts[k], opts, step=k + 1)
        _remember(evaluator.prune_states, prefix_keys[k + 1], state)
    return state


def _base_seed(evaluator: Evaluator, base: Bits) -> int:
    """The seed the search trained the base with (engine: run seed + architecture key)."""
    return derive_seed(evaluator.cfg.evolution.seed, evaluator.space.key(base))


def _train_base(evaluator: Evaluator, base: Bits, opts: PruneOptions) -> _State:
    arch = evaluator.space.decode(base)
    model = evaluator.train(arch, _base_seed(evaluator, base))
    state = _State(base, arch, model, {}, opts.mask_level(()))
    if opts.mask != "none" and state.level > 0:  # a gradual mask starts at sparsity 0
        state.masks = _choose_masks(evaluator, state, opts)
        _fine_tune(evaluator, state, opts, step=0)
    return state


def _cut(evaluator: Evaluator, state: _State, gene: pruning.Cut, opts: PruneOptions, step: int) -> _State:
    """Switch one cut off (none for TUNE_ONLY), build the network, carry the weights, fine-tune.

    The stages keep the widths earlier unit cuts left them (the genome does not
    hold them): rebuilt at the genome's widths, every narrowed layer would miss
    its weights and start from a fresh initialisation, and a control built so is
    a broken network that any cut beats.
    """
    bits = evaluator.space.repair(pruning.apply_cuts(state.bits, [gene]))
    arch = evaluator.space.decode(bits).with_widths({st.index: st.width for st in state.arch.stages})
    old = {layer.name: [w.copy() for w in layer.get_weights()] for layer in state.model.layers}
    model = evaluator.build(arch, derive_seed(_base_seed(evaluator, state.bits), f"cut{step}"))
    _copy_weights(model, old, pruning.layer_map(evaluator.space, state.bits, bits))
    return _masked_and_tuned(evaluator, _State(bits, arch, model, {}, state.level), opts, step)


def _narrow(evaluator: Evaluator, state: _State, cut: pruning.Cut, opts: PruneOptions, step: int) -> _State:
    """A unit cut: keep the stage's most salient units, rebuild it smaller, fine-tune."""
    _, index, kept = cut
    sal = restructure.unit_saliency(state.model, state.arch, int(index), kernel_gradients(evaluator, state))
    keep = sorted(np.argsort(-sal, kind="stable")[:int(kept)].tolist())
    arch = state.arch.with_widths({int(index): int(kept)})
    seed = derive_seed(_base_seed(evaluator, state.bits), f"cut{step}")
    model = restructure.shrink(state.model, state.arch, arch, {int(index): keep},
                               lambda a: evaluator.build(a, seed))
    return _masked_and_tuned(evaluator, _State(state.bits, arch, model, {}, state.level), opts, step)


def _masked_and_tuned(evaluator: Evaluator, state: _State, opts: PruneOptions, step: int) -> _State:
    """``state`` after a cut: its masks chosen anew (under a mask), then fine-tuned."""
    if opts.mask != "none" and state.level > 0:
        state.masks = _choose_masks(evaluator, state, opts)
    _fine_tune(evaluator, state, opts, step)
    return state


def unit_cut_saliency(evaluator: Evaluator, state: _State, opts: PruneOptions) -> dict[pruning.Cut, float]:
    """The unit cut offered per stage and its saliency: the summed saliency of the units it drops.

    Each offer removes a quarter of the stage's current units (at least one,
    never the last), the least salient first; under an N:M mask the units kept
    stay a multiple of M, so the narrower layers still hold the pattern.
    """
    grads = kernel_gradients(evaluator, state)
    m = masks_lib.parse_nm(opts.nm)[1] if opts.mask == "nm" else 1
    out: dict[pruning.Cut, float] = {}
    for st in state.arch.stages:
        kept = (st.width - max(1, int(round(st.width * UNIT_STEP)))) // m * m
        drop = st.width - kept
        if kept < 1:
            continue
        sal = np.sort(restructure.unit_saliency(state.model, state.arch, st.index, grads))
        out[(pruning.UNITS, st.index, st.width - drop)] = float(sal[:drop].sum())
    return out


def mask_step_saliency(evaluator: Evaluator, state: _State, opts: PruneOptions) -> dict[pruning.Cut, float]:
    """The next mask step offered (under a gradual mask, below its sparsity) and its saliency:
    the summed Taylor saliency ``|w * dL/dw|`` of the weights the step's masks would zero."""
    k = int(round(state.level / opts.mask_step)) + 1 if opts.gradual else 0
    if not opts.gradual or opts.mask_level([(pruning.MASK, k)]) <= state.level + 1e-9:
        return {}
    grads = kernel_gradients(evaluator, state)
    nm = masks_lib.parse_nm(opts.nm)
    nxt = masking.compute_masks(state.model, opts.mask, opts.mask_level([(pruning.MASK, k)]), nm,
                                grads if opts.mask_score == "saliency" else None, _unmasked(opts))
    total = 0.0
    for name, mask in nxt.items():
        kernel = state.model.get_layer(name).kernel.numpy()
        now = state.masks.get(name, np.ones_like(mask))
        total += float(np.sum(masks_lib.importance(kernel, grads[name]) * np.clip(now - mask, 0.0, 1.0)))
    return {(pruning.MASK, k): total}


def _copy_weights(model: keras.Model, old: dict[str, list[np.ndarray]], names: dict[str, str]) -> None:
    """Copy each layer whose node survived (renamed by ``names``) when its shapes match."""
    back = {new: prev for prev, new in names.items()}
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix, _, suffix = layer.name.rpartition("_")
        source = f"{back[prefix]}_{suffix}" if prefix in back else layer.name
        weights = old.get(source)
        if weights and [w.shape for w in weights] == [tuple(v.shape) for v in layer.weights]:
            layer.set_weights(weights)


def _fine_tune(evaluator: Evaluator, state: _State, opts: PruneOptions, step: int) -> None:
    """``cycles`` SGD steps at ``tune_lr_scale`` times the network's learning rate.

    The batch order depends on the chain's base genome and the step only, so
    the control of a round and every cut tried against it see the same batches:
    their comparison then measures the cut, not two draws of batch noise.
    ``tune_lr_scale`` is 1 in attempts stored before it existed.
    """
    data = evaluator.data
    masking.masked_fit(state.model, data.x_train, data.y_train, state.masks, task=state.arch.task,
                       learning_rate=state.arch.learning_rate * opts.tune_lr_scale,
                       momentum=state.arch.momentum, steps=opts.cycles,
                       batch_size=evaluator.batch_size(state.arch),
                       seed=tune_seed(evaluator, opts, step))


def tune_seed(evaluator: Evaluator, opts: PruneOptions, step: int) -> int:
    """The batch-order seed of step ``step`` of a chain: one per base genome and step."""
    return derive_seed(_base_seed(evaluator, str_to_bits(opts.base)), f"tune{step}")


def _choose_masks(evaluator: Evaluator, state: _State, opts: PruneOptions) -> masking.Masks:
    """The masks of ``state`` at its sparsity ``state.level``."""
    nm = masks_lib.parse_nm(opts.nm)
    grads = None
    if opts.mask_score == "saliency":
        grads = kernel_gradients(evaluator, state)
    return masking.compute_masks(state.model, opts.mask, state.level, nm, grads, _unmasked(opts))


def _unmasked(opts: PruneOptions) -> tuple[str, ...]:
    """Layers a mask leaves whole: the head under a gradual column mask (its columns are
    the outputs; masking them silences classes and compacts nothing)."""
    return ("head",) if opts.gradual and opts.mask == "column" else ()


# ------------------------------------------------------------ cache ------
def _cache_key(base: Bits, cuts: list[pruning.Cut], settings: dict[str, Any]) -> str:
    blob = {"base": "".join(map(str, base)),
            "cuts": pruning.cuts_to_json(cuts), **settings}
    return json.dumps(blob, sort_keys=True)


def _remember(kept: "OrderedDict[str, Snapshot]", key: str, state: _State) -> None:
    """Keep ``state``'s weights under ``key``, the least recently kept going first."""
    weights = {layer.name: [w.copy() for w in layer.get_weights()] for layer in state.model.layers}
    kept[key] = Snapshot(state.bits, state.arch, weights, {k: v.copy() for k, v in state.masks.items()},
                         state.level)
    kept.move_to_end(key)
    while len(kept) > STATES_KEPT:
        kept.popitem(last=False)


def _restore(evaluator: Evaluator, snap: Snapshot, base: Bits) -> _State:
    arch = snap.arch
    model = evaluator.build(arch, _base_seed(evaluator, base))
    for layer in model.layers:
        if layer.name in snap.weights and layer.weights:
            layer.set_weights(snap.weights[layer.name])
    return _State(snap.bits, arch, model, {k: v.copy() for k, v in snap.masks.items()}, snap.level)


# -------------------------------------------------------------- saliency ---
def _sample(evaluator: Evaluator) -> tuple[np.ndarray, np.ndarray]:
    data = evaluator.data
    n = min(len(data.x_train), SALIENCY_SAMPLES)
    return data.x_train[:n], data.y_train[:n]


def _forward(model: keras.Model, arch: Architecture, x) -> tuple[Any, dict, dict]:
    """The builder's graph run layer by layer, keeping node inputs and pre-activations."""
    names = {layer.name for layer in model.layers}
    h = model.get_layer("flatten")(x) if arch.family == "dense" else x
    node_out, pre = {}, {}
    kernel = "conv" if arch.family == "conv" else "dense"
    for stage in arch.stages:
        if f"s{stage.index}_pool" in names:
            h = model.get_layer(f"s{stage.index}_pool")(h)
        for node in range(stage.nodes):
            preds = stage.predecessors(node)
            node_in = h if not preds else tf.add_n([node_out[(stage.index, p)] for p in preds])
            z = model.get_layer(f"s{stage.index}_n{node}_{kernel}")(node_in)
            pre[(stage.index, node)] = z
            a = model.get_layer(f"s{stage.index}_n{node}_bn")(z, training=False) if kernel == "conv" else z
            node_out[(stage.index, node)] = model.get_layer(f"s{stage.index}_n{node}_relu")(a)
        h = tf.add_n([node_out[(stage.index, n)] for n in stage.sinks()])
    if arch.family == "conv":
        h = model.get_layer("gap")(h)
    return model.get_layer("head")(h), node_out, pre


def gene_saliency(evaluator: Evaluator, state: _State) -> dict[pruning.Cut, float]:
    """First-order Taylor saliency ``sum |w * dL/dw|`` of every expressed gene and node cut.

    An edge i -> j feeds node i's output into node j's kernel ``W_j``; since node
    j's input is the sum of its predecessors, ``dL/dW_j`` splits into one term per
    predecessor, ``G_ij`` = the gradient ``W_j`` would get from node i's output
    alone. The edge's saliency is ``sum |W_j * G_ij|``. A stage gene expresses the
    whole stage: the sum of ``|v * dL/dv|`` over every weight of the stage, and a
    node cut (:func:`gnas.pruning.cuts.node_units`) the same sum over the node's
    layers (kernel, bias, batch norm).
    """
    arch, model = state.arch, state.model
    x, y = _sample(evaluator)
    loss_fn = masking._loss(arch.task)
    kernel = "conv" if arch.family == "conv" else "dense"
    with tf.GradientTape(persistent=True) as tape:
        out, node_out, pre = _forward(model, arch, tf.convert_to_tensor(x))
        loss = loss_fn(y, out)
    deltas = dict(zip(pre, tape.gradient(loss, list(pre.values()))))
    stage_vars = {s.index: [v for layer in model.layers if layer.name.startswith(f"s{s.index}_")
                            for v in layer.trainable_variables] for s in arch.stages}
    var_grads = tape.gradient(loss, [v for vs in stage_vars.values() for v in vs])
    del tape
    grads = iter(var_grads)
    var_sal: dict[str, float] = {}
    stage_sal = {}
    for s, vs in stage_vars.items():
        for v in vs:
            var_sal[v.path if hasattr(v, "path") else v.name] = float(tf.reduce_sum(tf.abs(v * next(grads))))
        stage_sal[s] = sum(var_sal[v.path if hasattr(v, "path") else v.name] for v in vs)
    out_sal: dict[pruning.Cut, float] = {}
    for genes, prefix in pruning.node_units(evaluator.space, state.bits).items():
        out_sal[genes] = sum(val for name, val in var_sal.items() if name.startswith(prefix + "_"))
    for unit in pruning.gene_units(evaluator.space, state.bits):
        if unit.edge is None:
            out_sal[unit.gene] = stage_sal[unit.stage]
            continue
        i, j = unit.edge
        w = tf.convert_to_tensor(model.get_layer(f"s{unit.stage}_n{j}_{kernel}").kernel)
        g = _share_of_gradient(node_out[(unit.stage, i)], w, deltas[(unit.stage, j)], kernel)
        out_sal[unit.gene] = float(tf.reduce_sum(tf.abs(w * g)))
    return out_sal


def _share_of_gradient(node_output, kernel, delta, kind: str):
    """dL/dW restricted to one input: the kernel's gradient were ``node_output`` its only input."""
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        if kind == "conv":
            z = tf.nn.conv2d(node_output, kernel, strides=1, padding="SAME")
        else:
            z = tf.matmul(node_output, kernel)
    return tape.gradient(z, kernel, output_gradients=delta)


def kernel_gradients(evaluator: Evaluator, state: _State) -> dict[str, np.ndarray]:
    """``dL/dW`` of every kernel on the saliency sample (for saliency-ranked masks)."""
    x, y = _sample(evaluator)
    layers = masking.kernel_layers(state.model)
    with tf.GradientTape() as tape:
        loss = masking._loss(state.arch.task)(y, state.model(x, training=False))
    grads = tape.gradient(loss, [layer.kernel for layer in layers])
    return {layer.name: np.asarray(g) for layer, g in zip(layers, grads)}
