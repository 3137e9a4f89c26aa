"""Dead-node removal: hand-made DAGs, the Genetic-CNN convention, and parameter counts."""
from __future__ import annotations

import random

import pytest

from gnas.genome.architecture import (Architecture, StageArch, canonical_labels, canonical_stage, complexity,
                               genetic_cnn_terminals, live_nodes)
from gnas.genome.space import stage_edge_pairs


def test_chain_is_all_alive():
    assert live_nodes(4, [(0, 1), (1, 2), (2, 3)], inputs=[0], outputs=[3]) == {0, 1, 2, 3}


def test_chain_without_input_is_all_dead_recursively():
    # Nothing feeds node 0, so 0 dies, then 1 (its only source), then 2 and 3.
    assert live_nodes(4, [(0, 1), (1, 2), (2, 3)], inputs=[], outputs=[3]) == frozenset()


def test_chain_without_output_is_all_dead_recursively():
    assert live_nodes(4, [(0, 1), (1, 2), (2, 3)], inputs=[0], outputs=[]) == frozenset()


def test_diamond_alive_and_dangling_branch_removed():
    diamond = [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert live_nodes(4, diamond, inputs=[0], outputs=[3]) == {0, 1, 2, 3}
    # 4 hangs off node 1 and leads nowhere; 5 leads into 4 only: both die, 5 only after 4.
    assert live_nodes(6, diamond + [(1, 4), (5, 4)], inputs=[0, 5], outputs=[3]) == {0, 1, 2, 3}


def test_everything_dead_and_nothing_dead():
    assert live_nodes(3, [], inputs=[], outputs=[]) == frozenset()
    assert canonical_stage(4, ()) == (1, ())  # a stage whose nodes are all dead is one node
    assert canonical_stage(3, ((0, 1), (0, 2), (1, 2))) == (3, ((0, 1), (0, 2), (1, 2)))


def test_isolated_nodes_are_dropped_and_relabelled():
    n, edges, labels = canonical_labels(5, ((1, 3),))
    assert (n, edges) == (2, ((0, 1),))
    assert labels == {1: 0, 3: 1}


def test_genetic_cnn_terminals_make_only_isolated_nodes_dead():
    rng = random.Random(3)
    for k in range(2, 7):
        pairs = stage_edge_pairs(k)
        for _ in range(200):
            edges = [p for p in pairs if rng.random() < 0.35]
            inputs, outputs = genetic_cnn_terminals(k, edges)
            connected = {n for e in edges for n in e}
            assert live_nodes(k, edges, inputs, outputs) == connected


def test_canonical_form_is_shared_by_isomorphic_dags():
    a = canonical_stage(4, ((0, 2), (2, 3)))
    b = canonical_stage(4, ((1, 2), (2, 3)))
    assert a == b == (3, ((0, 1), (1, 2)))


@pytest.mark.parametrize("family,shape", [("dense", (8, 8)), ("conv", (8, 8, 1))])
def test_parameter_count_reflects_removed_nodes(family, shape):
    keras = pytest.importorskip("keras")
    from gnas.backend.builder import build_model

    n, edges = canonical_stage(4, ((0, 2),))  # nodes 1 and 3 are dead
    arch = Architecture(family=family, input_shape=shape, n_outputs=10, task="classification",
                        stages=(StageArch(0, n, edges, 8),), learning_rate=0.01, momentum=0.5)
    params, _ = complexity(arch)
    keras.backend.clear_session()
    assert build_model(arch).count_params() == params
    full = Architecture(**{**arch.__dict__, "stages": (StageArch(0, 4, ((0, 1), (0, 2), (0, 3)), 8),)})
    assert complexity(full)[0] > params
