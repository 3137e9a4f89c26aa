"""Weight inheritance: kept weights (round trip, cap, forgetting, damage), which parent each
stage comes from, and a child's layers starting from its parent's (real Keras)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from gnas.config import load_config
from gnas.genome.space import SearchSpace, bits_to_str
from gnas.inheritance.lineage import Inheritance, InheritMode, Parent, inherited_weights, stage_sources
from gnas.inheritance.weights import WeightStore, WeightsUnreadable
from gnas.records import EvalResult, EvalTask, Kind

from helpers import one_stage_evaluator  # noqa: E402


def layers(seed: int, n: int = 3, width: int = 64) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {f"s0_n{i}_dense": [rng.normal(size=(width, width)).astype(np.float32),
                               rng.normal(size=width).astype(np.float32)] for i in range(n)}


def test_kept_weights_round_trip_exactly(tmp_path):
    store = WeightStore(tmp_path / "weights", 2**20)
    given = layers(0)
    assert store.save("abc", given) and store.has("abc")
    back = store.load("abc")
    assert sorted(back) == sorted(given)
    for name in given:
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(back[name], given[name]))


def test_the_cap_keeps_no_more_and_says_so_once(tmp_path, caplog):
    one = sum(w.nbytes for ws in layers(0).values() for w in ws)
    store = WeightStore(tmp_path / "weights", int(one * 2.5))
    with caplog.at_level(logging.WARNING, logger="gnas"):
        assert [store.save(k, layers(i)) for i, k in enumerate("abcd")] == [True, True, False, False]
    assert not store.has("c") and store.bytes() <= store.max_bytes
    assert sum("evolution.inherit_max_mb" in r.message for r in caplog.records) == 1
    assert store.save("a", layers(5)), "replacing a kept network's weights does not count it twice"


def test_only_the_networks_named_stay_kept(tmp_path):
    store = WeightStore(tmp_path / "weights", 2**20)
    for k in "abc":
        store.save(k, layers(1))
    store.keep_only(["b", "zzz"])
    assert [store.has(k) for k in "abc"] == [False, True, False]


@pytest.mark.parametrize("content", [b"not an npz", None], ids=["damaged", "missing"])
def test_a_damaged_or_missing_weight_file_is_named_in_the_error(tmp_path, content):
    store = WeightStore(tmp_path / "weights", 2**20)
    store.path.mkdir()
    if content is not None:
        store.file("k").write_bytes(content)
    with pytest.raises(WeightsUnreadable, match="cannot read the parent weights"):
        store.load("k")


def two_stage_space() -> SearchSpace:
    cfg = load_config(overrides={"space.stage_nodes": (3, 3), "space.max_depth": 2})
    return SearchSpace(cfg.space, (8, 8, 1), 10, family="dense")


def test_each_stage_comes_from_the_parent_whose_genes_it_carries():
    space = two_stage_space()
    rng = np.random.default_rng(0)
    a, b = list(space.random_bits(rng)), list(space.random_bits(rng))
    child = list(a)
    for s in space.stage_slices(1):
        child[s] = b[s]
        a[s] = [1 - x for x in b[s]]  # stage 1 of a disagrees everywhere
    parents = [Parent(tuple(a), "a"), Parent(tuple(b), "b")]
    assert stage_sources(tuple(child), parents, space) == [0, 1]
    loaded = [{"s0_n0_dense": ["a0"], "s1_n0_dense": ["a1"], "head": ["ah"]},
              {"s0_n0_dense": ["b0"], "s1_n0_dense": ["b1"], "head": ["bh"]}]
    got = inherited_weights(tuple(child), parents, loaded, space, InheritMode.PARENT)
    assert got == {"s0_n0_dense": ["a0"], "s1_n0_dense": ["b1"], "head": ["ah"]}
    assert inherited_weights(tuple(child), parents, loaded, space, InheritMode.FIRST) == {"s0_n0_dense": ["a0"]}


def test_the_room_records_lineage_and_keeps_weights_out_of_the_row(tmp_path):
    space = two_stage_space()
    bits = space.random_bits(np.random.default_rng(1))
    room = Inheritance("parent", space, WeightStore(tmp_path / "w", 2**20))
    room.store.save("p", layers(2))
    task = room.attach(EvalTask(key="c", genome=bits_to_str(bits), seed=1), [Parent(bits, "p")])
    assert task.keep_weights and sorted(task.inherit) == sorted(layers(2))
    row = room.keep(EvalResult(key="c", genome=task.genome, status="ok", val_error=0.1, weights=layers(3)))
    assert row.weights is None and row.metrics["inherit_from"] == ["p"] and room.store.has("c")
    assert "weights" not in row.to_dict()
    pruning = room.attach(EvalTask(key="x", genome=task.genome, seed=1, kind=Kind.PRUNE), [Parent(bits, "p")])
    assert not pruning.keep_weights and not pruning.inherit
    promotion = room.attach(EvalTask(key="c", genome=task.genome, seed=1, epochs=3, resume_from=1), ())
    assert promotion.keep_weights and not promotion.inherit, "a promotion's weights replace the rung's"
    off = Inheritance("none", space, None)
    plain = EvalTask(key="c", genome=task.genome, seed=1)
    assert off.attach(plain, [Parent(bits, "p")]) is plain


def test_a_damaged_parent_file_trains_the_child_from_scratch_and_says_so_in_its_row(tmp_path):
    space = two_stage_space()
    bits = space.random_bits(np.random.default_rng(1))
    room = Inheritance("parent", space, WeightStore(tmp_path / "w", 2**20))
    room.store.path.mkdir()
    room.store.file("p").write_bytes(b"garbage")
    task = room.attach(EvalTask(key="c", genome=bits_to_str(bits), seed=1), [Parent(bits, "p")])
    assert task.keep_weights and not task.inherit
    row = room.keep(EvalResult(key="c", genome=task.genome, status="ok", val_error=0.1))
    assert "cannot read the parent weights" in row.metrics["inherit_note"]


@pytest.fixture(scope="module")
def evaluator():
    return one_stage_evaluator(epochs=1, samples=240)


@pytest.mark.parametrize("fused", [True, False], ids=["dense superset", "exact graphs"])
def test_a_child_starts_from_its_parents_trained_layers(evaluator, monkeypatch, fused):
    from gnas.backend import population, superset
    from gnas.backend.inheritance import inherit, layer_weights

    if not fused:
        monkeypatch.setattr(superset, "applies", lambda archs: False)
    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(5)))
    [parent] = population.train_group(evaluator, [EvalTask(key="p", genome=genome, seed=3, keep_weights=True)])
    assert parent.ok and "head" in parent.weights and "s0_n0_dense" in parent.weights
    [scratch] = population.train_group(evaluator, [EvalTask(key="c", genome=genome, seed=4)])
    [child] = population.train_group(evaluator, [EvalTask(key="c", genome=genome, seed=4,
                                                          inherit=parent.weights)])
    assert scratch.weights is None and "inherited_layers" not in scratch.metrics
    assert sorted(child.metrics["inherited_layers"]) == sorted(parent.weights)
    assert child.metrics["inheritable_layers"] == len(parent.weights)
    assert child.val_error != scratch.val_error
    # A layer whose shape differs keeps its own initialisation.
    model = evaluator.build(evaluator.space.decode([int(c) for c in genome]), 9)
    wrong = {**parent.weights, "head": [np.zeros((3, 3), np.float32), np.zeros(3, np.float32)]}
    taken = inherit(model, wrong)
    assert "head" not in taken and len(taken) == len(parent.weights) - 1
    mine = layer_weights(model)
    assert all(np.array_equal(a, b) for n in taken for a, b in zip(mine[n], parent.weights[n]))
