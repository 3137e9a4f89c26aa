"""Row, column and block masks grow by mask steps, each kept or restored like a cut."""
from __future__ import annotations

import json

import pytest

from gnas.config import load_config
from gnas.genome.space import SearchSpace
from gnas.pruning import cuts as pruning
from gnas.pruning.records import MASK_STEP, SETTINGS, PruneOptions


@pytest.fixture()
def space() -> SearchSpace:
    cfg = load_config(overrides={"space.stage_nodes": (3, 4), "space.max_depth": 2})
    return SearchSpace(cfg.space, (64,), 10, family="dense")


def base_bits(space: SearchSpace):
    bits = [0] * space.length
    sl = space.edge_slices[0]
    bits[sl] = [1] * (sl.stop - sl.start)
    return space.repair(tuple(bits))


@pytest.mark.parametrize("mask", ["row", "column", "block"])
def test_structured_masks_are_gradual_and_the_others_are_not(mask):
    opts = PruneOptions.for_run(load_config(None, {"prune.fraction": 0.5, "prune.mask": mask}))
    assert opts.gradual and opts.mask_step == MASK_STEP
    assert opts.mask_level(()) == 0.0
    assert opts.mask_level([3, (pruning.MASK, 2)]) == pytest.approx(2 * MASK_STEP)
    assert opts.mask_level([(pruning.MASK, 99)]) == 0.5  # never past the mask's sparsity
    assert opts.settings()["mask_step"] == MASK_STEP
    for other in ("irregular", "nm", "none"):
        plain = PruneOptions.for_run(load_config(None, {"prune.fraction": 0.5, "prune.mask": other}))
        assert not plain.gradual and plain.mask_level(()) == 0.5
        assert tuple(plain.settings()) == SETTINGS


def test_an_attempt_stored_before_mask_steps_keeps_its_digest_and_its_one_shot_mask():
    row = {"base": "1011", "cuts": [3], "cycles": 5, "mask": "column", "sparsity": 0.5,
           "nm": "2:4", "tune_lr_scale": 1.0, "mask_score": "magnitude"}
    old = PruneOptions.from_dict(row)
    assert old.mask_step == 0.0 and not old.gradual and old.mask_level(()) == 0.5
    assert tuple(old.settings()) == SETTINGS  # the same variant digest as when it was stored


def test_a_mask_step_survives_json_and_switches_no_gene_off(space):
    step = (pruning.MASK, 3)
    opts = PruneOptions.for_run(load_config(None, {"prune.fraction": 0.5, "prune.mask": "column"}))
    attempt = opts.attempt(base_bits(space), ((1, 2), step))
    back = PruneOptions.from_dict(json.loads(json.dumps(attempt.to_dict())))
    assert back == attempt and back.cuts[-1] == step
    assert pruning.cut_genes(step) == () and pruning.apply_cuts((1, 1), [step]) == (1, 1)
    assert pruning.mask_steps([step, (pruning.MASK, 1), 4]) == 3
    assert pruning.cut_architecture(space, base_bits(space), [step]) == space.decode(base_bits(space))


class MaskScorer:
    """Each mask step removes 10 % of the parameters; F rises for steps past ``tolerated``."""

    def __init__(self, tolerated: int, control_gain: float = 0.0):
        self.tolerated, self.control_gain = tolerated, control_gain
        self.calls: list[tuple] = []

    def __call__(self, cuts):
        self.calls.append(cuts)
        k = pruning.mask_steps(cuts)
        f = 0.5 + (0.2 if k > self.tolerated else 0.0)
        if cuts and cuts[-1] == pruning.TUNE_ONLY:
            f -= self.control_gain
        offer = {(pruning.MASK, k + 1): 0.0} if k < 5 else {}
        return pruning.Attempt(ok=True, fitness=f, pruned_fraction=0.1 * k, saliency=offer, key=str(cuts))


def test_mask_steps_are_kept_while_f_does_not_rise_then_the_chain_stops(space):
    scorer = MaskScorer(tolerated=2)
    result = pruning.prune_chain(space, base_bits(space), scorer, target=0.5)
    assert result.cuts == [(pruning.MASK, 1), (pruning.MASK, 2)]
    assert result.pruned_fraction == pytest.approx(0.2) and "no cut accepted" in result.reason
    assert (pruning.MASK, 3) in [c[-1] for c in scorer.calls if c]  # tried, then restored
    # every step was judged against a control fine-tuned as long without it
    assert sum(1 for c in scorer.calls if c and c[-1] == pruning.TUNE_ONLY) == 3


def test_mask_steps_reach_the_target_when_every_step_holds(space):
    result = pruning.prune_chain(space, base_bits(space), MaskScorer(tolerated=9), target=0.5)
    assert [pruning.mask_steps(result.cuts[:k + 1]) for k in range(len(result.cuts))] == [1, 2, 3, 4, 5]
    assert "target" in result.reason


def test_a_mask_step_is_restored_when_the_control_does_better(space):
    result = pruning.prune_chain(space, base_bits(space), MaskScorer(tolerated=9, control_gain=0.1),
                                 target=0.5)
    assert result.cuts == [] and "no cut accepted" in result.reason


# ------------------------------------------------------------ real Keras replay
@pytest.fixture(scope="module")
def evaluator():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers import one_stage_evaluator

    return one_stage_evaluator(epochs=1, samples=200)


@pytest.mark.slow
def test_mask_steps_replay_to_a_compacted_network_that_shrinks_step_by_step(evaluator):
    """Each mask step zeroes more columns; the compacted network is smaller for each, the head
    keeps every output, and the attempt offers the next step with a saliency."""
    import numpy as np

    from gnas.backend.prune_eval import mask_step_saliency, network_size, rebuild_pruned, replay
    from gnas.genome.space import bits_to_str, str_to_bits

    genome = bits_to_str(evaluator.space.random_bits(np.random.default_rng(3)))
    settings = {"base": genome, "cycles": 5, "mask": "column", "sparsity": 0.5, "mask_step": 0.1}
    sizes, offers = [], []
    for k in range(0, 4):
        opts = PruneOptions.from_dict({**settings, "cuts": [[pruning.MASK, j] for j in range(1, k + 1)]})
        state = replay(evaluator, opts)
        assert state.level == pytest.approx(0.1 * k)
        assert "head" not in state.masks
        sizes.append(network_size(evaluator, str_to_bits(genome), state, "column")["params"])
        offers.append(mask_step_saliency(evaluator, state, opts))
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3]
    assert all(list(o) == [(pruning.MASK, k + 1)] and list(o.values())[0] >= 0 for k, o in enumerate(offers))
    model, _ = rebuild_pruned(evaluator, genome, 0, opts)
    assert model.count_params() == sizes[-1]
    assert model.get_layer("head").units == evaluator.space.n_outputs
