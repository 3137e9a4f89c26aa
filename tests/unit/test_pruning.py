"""The pruning chain with a fake scorer, P bookkeeping, ranking and layer maps."""
from __future__ import annotations

import pytest

from gnas.genome.architecture import complexity
from gnas.pruning import cuts as pruning
from gnas.config import load_config
from gnas.genome.space import SearchSpace, stage_edge_pairs


@pytest.fixture()
def space() -> SearchSpace:
    cfg = load_config(overrides={"space.stage_nodes": (3, 4), "space.max_depth": 2})
    return SearchSpace(cfg.space, (64,), 10, family="dense")


def full_bits(space: SearchSpace, stages: int = 2):
    bits = [0] * space.length
    for s in range(1, stages):
        bits[space.active_slice.start + s - 1] = 1
    for s in range(stages):
        sl = space.edge_slices[s]
        bits[sl] = [1] * (sl.stop - sl.start)
    return tuple(bits)


class FakeScorer:
    """F = 1 - (number of cuts) * gain, except genes in ``bad`` raise F; saliency = gene index."""

    def __init__(self, space, base, bad=(), gain=0.01, control_gain=0.0, nodes=False):
        self.space, self.base, self.bad, self.gain, self.control_gain = space, base, set(bad), gain, control_gain
        self.nodes = nodes
        self.calls = []

    def __call__(self, cuts):
        self.calls.append(cuts)
        real = [g for g in cuts if g != pruning.TUNE_ONLY]
        f = 1.0 - self.gain * len(real) + 0.5 * len(self.bad & set(real))
        if cuts and cuts[-1] == pruning.TUNE_ONLY:
            f -= self.control_gain
        bits = pruning.apply_cuts(self.base, real)
        sal = {g: float(g) for g in pruning.expressed_genes(self.space, bits)}
        if self.nodes:  # node cuts, ranked last among equals by a large saliency
            sal.update({genes: 100.0 + sum(genes) for genes in pruning.node_units(self.space, bits)})
            params = lambda b: complexity(self.space.decode(self.space.repair(b)))[0]  # noqa: E731
            fraction = 1.0 - params(bits) / params(self.base)
        else:
            fraction = pruning.pruned_fraction(self.space, self.base, bits)
        return pruning.Attempt(ok=True, fitness=f, saliency=sal, key=str(cuts), pruned_fraction=fraction)


def test_expressed_genes_and_pruned_fraction(space):
    base = full_bits(space, 1)  # stage 1 off: its edges are not expressed
    assert pruning.expressed_genes(space, base) == list(range(space.edge_slices[0].start,
                                                              space.edge_slices[0].stop))
    two = full_bits(space, 2)
    n = len(pruning.expressed_genes(space, two))
    assert n == 1 + 3 + 6
    stage_gene = space.active_slice.start
    # switching stage 1 off prunes its active bit and its 6 edges
    assert pruning.pruned_fraction(space, two, pruning.apply_cuts(two, [stage_gene])) == pytest.approx(7 / 10)
    assert pruning.pruned_fraction(space, two, two) == 0.0
    empty = tuple([0] * space.length)
    assert pruning.pruned_fraction(space, empty, empty) == 0.0


def test_chain_accepts_cuts_until_target(space):
    base = full_bits(space, 1)
    scorer = FakeScorer(space, base)
    result = pruning.prune_chain(space, base, scorer, target=0.5, structured=False)
    assert result.pruned_fraction >= 0.5
    assert "target" in result.reason
    assert result.cuts == [space.edge_slices[0].start, space.edge_slices[0].start + 1]  # lowest saliency first
    assert result.fitness_after < result.fitness_before


def test_chain_restores_rejected_cut_and_tries_next(space):
    base = full_bits(space, 1)
    first = space.edge_slices[0].start
    scorer = FakeScorer(space, base, bad={first})
    result = pruning.prune_chain(space, base, scorer, target=0.5, structured=False)
    assert first not in result.cuts
    rejected = [a for a in result.attempts if a["cuts"] == [first]]
    assert rejected and not rejected[0]["accepted"]
    assert result.pruned_fraction >= 0.5


def test_chain_stops_when_no_cut_is_accepted(space):
    base = full_bits(space, 1)
    genes = pruning.expressed_genes(space, base)
    scorer = FakeScorer(space, base, bad=genes)
    result = pruning.prune_chain(space, base, scorer, target=0.5, max_rejections=2, structured=False)
    assert result.cuts == [] and result.pruned_fraction == 0.0
    assert result.reason.startswith("no cut accepted")
    assert len(scorer.calls) == 1 + 1 + 2  # base, control, two rejected attempts


def test_cut_is_judged_against_the_uncut_control(space):
    base = full_bits(space, 1)
    # Fine-tuning alone improves F more than any cut does: every cut is rejected.
    scorer = FakeScorer(space, base, gain=0.01, control_gain=0.05)
    result = pruning.prune_chain(space, base, scorer, target=0.5, structured=False)
    assert result.cuts == [] and "control" in result.reason


def test_nothing_to_prune(space):
    empty = tuple([0] * space.length)
    result = pruning.prune_chain(space, empty, FakeScorer(space, empty), target=0.5)
    assert result.reason == "no expressed connection gene left to cut"


def test_failed_base_stops_with_reason(space):
    base = full_bits(space, 1)
    result = pruning.prune_chain(space, base, lambda cuts: pruning.Attempt(False, 9.0, message="diverged"), 0.5)
    assert "failed to train (diverged)" in result.reason


def test_accept_rule():
    assert pruning.is_accepted(0.5, 0.5)
    assert pruning.is_accepted(0.4, 0.5)
    assert not pruning.is_accepted(0.5001, 0.5)


def test_ranking_formula():
    sal = {1: 2.0, 2: 4.0, 3: 0.0}
    assert pruning.ranking_scores(sal) == {1: 0.5, 2: 1.0, 3: 0.0}
    scores = pruning.ranking_scores(sal, {1: 0.0, 2: 1.0, 3: 1.0}, weight=0.5)
    assert scores == {1: 0.25, 2: 1.0, 3: 0.5}
    assert pruning.rank(scores) == [1, 3, 2]
    assert pruning.rank({5: 0.1, 4: 0.1}) == [4, 5]


def test_attempt_tag_is_deterministic_and_distinct(space):
    base = full_bits(space, 1)
    s = {"cycles": 40, "mask": "none"}
    assert pruning.attempt_tag(base, [3], s) == pruning.attempt_tag(base, (3,), dict(s))
    assert pruning.attempt_tag(base, [3], s) != pruning.attempt_tag(base, [3, 4], s)
    assert pruning.attempt_tag(base, [3], s) != pruning.attempt_tag(base, [3], {**s, "cycles": 20})


def test_layer_map_follows_nodes_through_relabelling(space):
    bits = list(tuple([0] * space.length))
    pairs = stage_edge_pairs(3)
    sl = space.edge_slices[0]
    for p in [(0, 1), (1, 2), (0, 2)]:
        bits[sl.start + pairs.index(p)] = 1
    cut = pruning.apply_cuts(bits, [sl.start + pairs.index((0, 1))])
    mapping = pruning.layer_map(space, bits, cut)
    # after the cut node 1 -> 2 and node 0 -> 2 remain; labels stay topological
    assert set(mapping) == {"s0_n0", "s0_n1", "s0_n2"}
    assert sorted(mapping.values()) == ["s0_n0", "s0_n1", "s0_n2"]
    units = pruning.gene_units(space, cut)
    assert {u.edge for u in units} == {(0, 2), (1, 2)}


def _stage0(space, edges):
    bits = [0] * space.length
    pairs = stage_edge_pairs(space.stage_nodes[0])
    for p in edges:
        bits[space.edge_slices[0].start + pairs.index(p)] = 1
    return tuple(bits), pairs


def test_edge_cuts_of_a_dense_stage_do_not_shrink_but_a_node_cut_does(space):
    """The re-routing the issue describes: an edge carries no weights, a node does."""
    bits, pairs = _stage0(space, [(0, 1), (0, 2), (1, 2)])
    drops = {p: pruning.parameter_drop(space, bits, [], space.edge_slices[0].start + pairs.index(p))
             for p in pairs}
    assert drops[(0, 2)] == 0 and drops[(1, 2)] == 0 and drops[(0, 1)] < 0  # node 1 reads the input
    nodes = pruning.node_units(space, bits)
    middle = tuple(space.edge_slices[0].start + pairs.index(p) for p in [(0, 1), (1, 2)])
    assert nodes[middle] == "s0_n1"
    width = space.decode(bits).stages[0].width
    assert pruning.parameter_drop(space, bits, [], middle) == width * width + width  # node 1's Dense


def test_structured_chain_only_makes_cuts_that_shrink(space):
    bits, _ = _stage0(space, [(0, 1), (0, 2), (1, 2)])
    scorer = FakeScorer(space, bits, nodes=True)
    result = pruning.prune_chain(space, bits, scorer, target=0.3)
    assert result.cuts and any(isinstance(c, tuple) for c in result.cuts)
    for k, cut in enumerate(result.cuts):
        assert pruning.parameter_drop(space, bits, result.cuts[:k], cut) > 0
    p = lambda b: complexity(space.decode(space.repair(b)))[0]  # noqa: E731
    assert result.pruned_fraction == pytest.approx(1 - p(pruning.apply_cuts(bits, result.cuts)) / p(bits))
    assert 0 < result.gene_fraction <= 1


def test_unit_cuts_narrow_a_stage_and_come_last(space):
    bits, _ = _stage0(space, [(0, 1), (0, 2), (1, 2)])
    width = space.decode(bits).stages[0].width
    half = (pruning.UNITS, 0, width // 2)
    arch = pruning.cut_architecture(space, bits, [half])
    assert arch.stages[0].width == width // 2
    assert pruning.parameter_drop(space, bits, [], half) == complexity(space.decode(bits))[0] - complexity(arch)[0] > 0
    assert pruning.as_cut(pruning.cuts_to_json([half])[0]) == half and pruning.cut_genes(half) == ()

    class Units(FakeScorer):
        def __call__(self, cuts):  # unit cuts are the cheapest here; gene cuts stay on offer
            a = super().__call__(cuts)
            w = pruning.cut_architecture(space, bits, [c for c in cuts if c != pruning.TUNE_ONLY]).stages[0].width
            sal = {**a.saliency, (pruning.UNITS, 0, w - 1): 0.0} if w > 1 else a.saliency
            arch = pruning.cut_architecture(space, bits, [c for c in cuts if c != pruning.TUNE_ONLY])
            fraction = 1 - complexity(arch)[0] / complexity(space.decode(bits))[0]
            return pruning.Attempt(True, a.fitness, fraction, sal, a.key)

    result = pruning.prune_chain(space, bits, Units(space, bits, nodes=True), target=0.5)
    assert result.cuts and all(pruning.is_unit_cut(c) for c in result.cuts)
    assert result.pruned_fraction >= 0.5 and "target" in result.reason


def test_a_node_cut_lowers_count_params_of_the_built_model_by_the_predicted_amount(space):
    from gnas.backend.builder import build_model

    bits, pairs = _stage0(space, [(0, 1), (0, 2), (1, 2)])
    middle = tuple(space.edge_slices[0].start + pairs.index(p) for p in [(0, 1), (1, 2)])
    after = pruning.apply_cuts(bits, [middle])
    before_model = build_model(space.decode(bits))
    after_model = build_model(space.decode(space.repair(after)))
    assert before_model.count_params() - after_model.count_params() == pruning.parameter_drop(space, bits, [], middle) > 0


def test_pruning_starts_within_a_default_length_run():
    from gnas.pruning.step import growth_budget

    cfg = load_config(overrides={"prune.fraction": 0.5})
    assert 1 <= growth_budget(cfg) < cfg.evolution.generations  # generations are left to prune in
    assert growth_budget(load_config(overrides={"prune.growth_generations": 3})) == 3
    assert growth_budget(load_config(overrides={"evolution.generations": 1})) == 1
