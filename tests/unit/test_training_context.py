"""The backend's training context keeps its own memory: two evaluators in one process share nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from helpers import one_stage_evaluator  # noqa: E402


def test_a_replay_is_remembered_by_its_own_evaluator_and_gives_the_same_network_there_and_anew():
    from gnas.backend import prune_eval
    from gnas.genome.space import bits_to_str
    from gnas.pruning.records import PruneOptions

    first, second = one_stage_evaluator(epochs=1, samples=200), one_stage_evaluator(epochs=1, samples=200)
    opts = PruneOptions.from_dict({"base": bits_to_str(first.space.random_bits(np.random.default_rng(2))),
                                   "cuts": [], "cycles": 2})
    kept = prune_eval.replay(first, opts)
    assert len(first.prune_states) == 1 and not second.prune_states and not second.supersets
    again = prune_eval.replay(second, opts)  # from scratch: the remembered state is not second's
    restored = prune_eval.replay(first, opts)  # from first's memory
    for a, b, c in zip(kept.model.get_weights(), again.model.get_weights(), restored.model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
