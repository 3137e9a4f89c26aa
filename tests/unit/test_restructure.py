"""Unit and filter cuts rebuild smaller layers that compute what the original computes."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from gnas.genome.architecture import Architecture, StageArch, complexity
from gnas.pruning.records import PruneOptions

from helpers import one_stage_evaluator  # noqa: E402


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


def _random_weights(model, seed: int = 0) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # non-trivial BN statistics and biases
        layer.set_weights([rng.normal(size=w.shape).astype("float32") * (0.3 if w.ndim else 1)
                           if "variance" not in v.path else rng.uniform(0.5, 2, size=w.shape).astype("float32")
                           for w, v in zip(layer.get_weights(), layer.weights)])
    return rng


def _zero(model, name: str, rows=(), cols=()) -> None:
    layer = model.get_layer(name)
    w = layer.get_weights()
    w[0][..., list(rows), :] = 0.0
    w[0][..., list(cols)] = 0.0
    layer.set_weights(w)


def test_zeroed_columns_and_rows_remove_the_predicted_weights():
    """Hand count on a dense chain: 12 -> s0_n0 (8) -> s0_n1 (8) -> s1_n0 (4) -> head (3).

    Column 5 of s0_n0 is a constant that folds into s0_n1's bias: -(12 + 1) - 8.
    Row 3 of s1_n0 leaves unit 3 of s0_n1 unread: -(7 + 1) - 4.
    """
    from gnas.backend.builder import build_model
    from gnas.backend.restructure import compact

    stages = (StageArch(0, 2, ((0, 1),), 8), StageArch(1, 1, (), 4))
    arch = Architecture("dense", (12,), 3, "classification", stages, 0.05, 0.9)
    model = build_model(arch)
    rng = _random_weights(model)
    _zero(model, "s0_n0_dense", cols=[5])
    _zero(model, "s1_n0_dense", rows=[3])
    small, plan = compact(model, arch)
    assert model.count_params() - small.count_params() == 13 + 8 + 8 + 4
    assert plan.params == small.count_params()
    assert plan.columns == {"s0_n0": [0, 1, 2, 3, 4, 6, 7], "s0_n1": [0, 1, 2, 4, 5, 6, 7],
                            "s1_n0": [0, 1, 2, 3]}
    x = rng.normal(size=(6, 12)).astype("float32")
    np.testing.assert_allclose(small(x, training=False), model(x, training=False), atol=1e-5)


def test_a_unit_that_reads_only_removed_positions_goes_too():
    """Compaction to a fixed point: removing a position can make a reader's unit constant.

    Column 5 of s0_n0 is a constant (removed, folded into s0_n1's bias); column 2
    of s0_n1 reads nothing but row 5, so once row 5 is gone it is the constant
    ReLU(b + c * W[5, 2]) and folds into s1_n0's bias: -(12 + 1) - 8, then -(7 + 1) - 4.
    """
    from gnas.backend.builder import build_model
    from gnas.backend.restructure import compact

    stages = (StageArch(0, 2, ((0, 1),), 8), StageArch(1, 1, (), 4))
    arch = Architecture("dense", (12,), 3, "classification", stages, 0.05, 0.9)
    model = build_model(arch)
    rng = _random_weights(model)
    _zero(model, "s0_n0_dense", cols=[5])
    n0 = model.get_layer("s0_n0_dense")
    n0.bias.assign(np.abs(n0.bias.numpy()) + 0.5)  # unit 5's constant ReLU(b) is not 0
    n1 = model.get_layer("s0_n1_dense")
    kernel = n1.kernel.numpy()
    kernel[[r for r in range(8) if r != 5], 2] = 0.0
    kernel[5, 2] = 2.0
    n1.kernel.assign(kernel)
    small, plan = compact(model, arch)
    assert plan.columns["s0_n1"] == [0, 1, 3, 4, 5, 6, 7]
    assert model.count_params() - small.count_params() == 13 + 8 + 8 + 4
    assert plan.params == small.count_params()
    x = rng.normal(size=(6, 12)).astype("float32")
    np.testing.assert_allclose(small(x, training=False), model(x, training=False), atol=1e-5)


def test_a_positive_constant_read_by_a_conv_stays():
    """Zero padding makes a constant channel's effect on a conv position-dependent: no fold."""
    from gnas.backend.builder import build_model
    from gnas.backend.restructure import compact

    stages = (StageArch(0, 2, ((0, 1),), 4),)
    arch = Architecture("conv", (6, 6, 1), 3, "classification", stages, 0.05, 0.9)
    model = build_model(arch)
    rng = _random_weights(model)
    for name, beta in (("s0_n0_bn", 1.0), ("s0_n1_bn", -1.0)):  # ReLU(BN(0)) of unit 0: 1.0 and 0.0
        bn = model.get_layer(name)
        bn.beta.assign(np.full(4, beta, "float32"))
        bn.moving_mean.assign(np.zeros(4, "float32"))
    _zero(model, "s0_n0_conv", cols=[0])   # read by s0_n1 (a conv): kept
    _zero(model, "s0_n1_conv", cols=[0])   # constant 0, read by the head: removed
    small, plan = compact(model, arch)
    assert plan.columns == {"s0_n0": [0, 1, 2, 3], "s0_n1": [1, 2, 3]}
    assert model.count_params() - small.count_params() == 9 * 4 + 4 + 3
    x = rng.normal(size=(4, 6, 6, 1)).astype("float32")
    np.testing.assert_allclose(small(x, training=False), model(x, training=False), atol=1e-5)


@pytest.mark.parametrize("family,kind", [("dense", "column"), ("dense", "row"), ("dense", "block"),
                                         ("conv", "column"), ("conv", "row"), ("conv", "block")])
def test_structured_masks_export_smaller_layers_that_compute_the_same(family, kind, tmp_path):
    from gnas.backend import masking
    from gnas.backend.builder import build_model
    from gnas.backend.export import save_model
    from gnas.backend.restructure import compact

    arch = _arch(family)
    model = build_model(arch)
    rng = _random_weights(model)
    masking.apply_masks(model, masking.compute_masks(model, kind, 0.5))
    small, plan = compact(model, arch)
    assert small.count_params() == plan.params
    assert plan.flops <= complexity(arch)[1]
    x = rng.normal(size=(5, *arch.input_shape)).astype("float32")
    np.testing.assert_allclose(small(x, training=False), model(x, training=False), atol=1e-5)
    if (family, kind) == ("conv", "block"):  # 4 x 4 tiles of a (9 cin, cout) kernel: no whole filter
        assert plan.params == model.count_params()
        return
    assert plan.params < model.count_params()
    prepared = _prepared_as_is(arch.input_shape)
    save_model(model, tmp_path / "masked.keras", prepared)
    save_model(small, tmp_path / "small.keras", prepared)
    assert (tmp_path / "small.keras").stat().st_size < (tmp_path / "masked.keras").stat().st_size
    import keras

    loaded = keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)


def _prepared_as_is(shape: tuple[int, ...]) -> dict:
    """A preprocessing record whose raw inputs are already what the network reads."""
    if len(shape) == 1:
        return {"input": {"kind": "vector", "features": shape[0], "mean": [], "std": []}, "output": None}
    return {"input": {"kind": "image", "raw_shape": list(shape), "shape": list(shape), "scale": 1.0},
            "output": None}


@pytest.fixture(scope="module")
def evaluator():
    return one_stage_evaluator(epochs=1, samples=200)


@pytest.mark.slow
def test_a_masked_pruned_network_is_rebuilt_compacted_with_the_size_it_reports(evaluator):
    """The replayed network (masked, in memory) vs what ``gnas export`` saves (compacted)."""
    kind = "column"
    from gnas.backend.prune_eval import network_size, rebuild_pruned, replay
    from gnas.genome.space import bits_to_str, str_to_bits

    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(3)))
    opts = {"base": genome, "cuts": [], "cycles": 5, "mask": kind, "sparsity": 0.5}
    state = replay(evaluator, PruneOptions.from_dict(opts))
    x = evaluator.data.x_val[:64]
    masked_out = np.asarray(state.model(x, training=False))
    size = network_size(evaluator, str_to_bits(genome), state, kind)
    stored = state.model.count_params()
    model, _ = rebuild_pruned(evaluator, genome, 0, PruneOptions.from_dict(opts))
    assert model.count_params() == size["params_stored"] < stored
    kind = "conv" if state.arch.family == "conv" else "dense"
    assert size["node_widths"] == [[model.get_layer(f"s{st.index}_n{n}_{kind}").kernel.shape[-1]
                                    for n in range(st.nodes)] for st in state.arch.stages]
    assert size["pruned_fraction"] == pytest.approx(1 - size["params"] / size["params_unpruned"])
    np.testing.assert_allclose(model(x, training=False), masked_out, atol=1e-5)


def test_the_exported_description_and_architecture_name_every_node_width():
    """Unit cuts narrow a stage, compaction narrows nodes: words and architecture.json say the same."""
    from gnas.pruning.step import exported_architecture, exported_description, narrowed

    arch = _arch("conv")
    assert arch.node_widths() == [[8, 8, 8], [4, 4]]
    assert "3 x Conv3x3-BN-ReLU(8)" in arch.describe()
    cut = {"widths": [6, 4]}
    assert narrowed(arch, cut).stages[0].width == 6 and narrowed(arch, None) is arch
    assert "3 x Conv3x3-BN-ReLU(6)" in exported_description(arch, cut)
    compacted = {"widths": [6, 4], "node_widths": [[6, 5, 6], [4, 4]]}
    out = exported_architecture(arch, compacted)
    assert [st["node_widths"] for st in out["stages"]] == [[6, 5, 6], [4, 4]]
    assert out["stages"][0]["width"] == 6
    words = exported_description(arch, compacted)
    assert "3 x Conv3x3-BN-ReLU(6, 5, 6)" in words and "2 x Conv3x3-BN-ReLU(4)" in words


@pytest.mark.slow
def test_the_control_after_a_unit_cut_is_the_narrowed_network_itself(evaluator, monkeypatch):
    """The chain's control (``TUNE_ONLY``) fine-tunes the network as the cuts left it.

    Fine-tuning is switched off, so the control must equal the narrowed network
    weight for weight; rebuilt at the genome's widths instead, its narrowed
    layers would start from a fresh initialisation.
    """
    from gnas.backend import prune_eval
    from gnas.genome.space import bits_to_str
    from gnas.pruning import cuts as pruning

    monkeypatch.setattr(prune_eval, "_fine_tune", lambda *args, **kwargs: None)
    monkeypatch.setattr(evaluator, "prune_states", type(evaluator.prune_states)())
    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(5)))
    stage = evaluator.space.decode(evaluator.space.random_bits(np.random.default_rng(5))).stages[0]
    narrow = (pruning.UNITS, stage.index, stage.width * 3 // 4)
    opts = {"base": genome, "cuts": [narrow], "cycles": 1}
    narrowed = prune_eval.replay(evaluator, PruneOptions.from_dict(opts))
    control = prune_eval.replay(evaluator, PruneOptions.from_dict({**opts, "cuts": [narrow, pruning.TUNE_ONLY]}))
    assert control.arch == narrowed.arch
    assert control.model.count_params() == narrowed.model.count_params()
    for a, b in zip(control.model.get_weights(), narrowed.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_round_s_control_and_its_cuts_fine_tune_on_the_same_batches(evaluator, monkeypatch):
    """Common batches: the control and each cut of one round differ only by the cut.

    Seeded from the network each attempt became, a cut and its control drew two
    batch orders, and the toggle-and-test compared two draws of batch noise.
    Every fine-tuning also runs at ``tune_lr_scale`` times the network's rate.
    """
    from gnas.backend import prune_eval
    from gnas.genome.space import bits_to_str
    from gnas.pruning import cuts as pruning

    calls = []
    real = prune_eval.masking.masked_fit

    def recording(model, x, y, masks, **kw):
        calls.append((kw["seed"], kw["learning_rate"]))
        return real(model, x, y, masks, **{**kw, "steps": 1})

    monkeypatch.setattr(prune_eval.masking, "masked_fit", recording)
    monkeypatch.setattr(evaluator, "prune_states", type(evaluator.prune_states)())
    bits = evaluator.space.random_bits(np.random.default_rng(5))
    edges = [u.gene for u in pruning.gene_units(evaluator.space, bits) if u.edge is not None]
    assert len(edges) >= 2
    opts = {"base": bits_to_str(bits), "cycles": 3, "tune_lr_scale": 0.25}
    seeds = {}
    for cuts in ([pruning.TUNE_ONLY], [edges[0]], [edges[1]], [edges[0], pruning.TUNE_ONLY], [edges[0], edges[1]]):
        calls.clear()
        state = prune_eval.replay(evaluator, PruneOptions.from_dict({**opts, "cuts": cuts}))
        seeds[tuple(cuts)] = calls[-1][0]
        assert calls[-1][1] == pytest.approx(state.arch.learning_rate * 0.25)
    first, second = [s for c, s in seeds.items() if len(c) == 1], [s for c, s in seeds.items() if len(c) == 2]
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0]
