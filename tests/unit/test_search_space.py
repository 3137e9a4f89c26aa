"""Chromosome layout, Gray coding, decoding, repair and canonical keys."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnas.genome.architecture import canonical_stage
from gnas.config import SpaceConfig, load_config
from gnas.errors import ConfigError, InvalidGenomeError
from gnas.genome.space import (SearchSpace, gray_to_int, int_to_gray, stage_edge_pairs,
                               str_to_bits, bits_to_str)


def make_space(**overrides) -> SearchSpace:
    cfg = SpaceConfig(**overrides)
    return SearchSpace(cfg, (8, 8, 1), 10, family="dense")


def test_gray_round_trip_and_single_bit_steps():
    for bits in range(1, 9):
        codes = [int_to_gray(v, bits) for v in range(2 ** bits)]
        assert [gray_to_int(c) for c in codes] == list(range(2 ** bits))
        for a, b in zip(codes, codes[1:]):  # neighbours differ in exactly one bit
            assert sum(x != y for x, y in zip(a, b)) == 1


def test_paper_preset_has_31_connection_genes():
    cfg = load_config(preset="paper")
    space = SearchSpace(cfg.space, (28, 28, 1), 10, family="conv")
    assert space.l == 31
    assert cfg.evolution.population == 10 and cfg.evolution.generations == 10
    assert cfg.train.epochs == 10 and cfg.space.max_depth == 5 and cfg.space.max_nodes == 1024


def test_segments_tile_the_chromosome():
    space = make_space()
    covered = []
    for _, start, stop in space.segments():
        covered.extend(range(start, stop))
    assert covered == list(range(space.length))
    assert space.l == 2 + 3 + 6 + 6


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_bit_string_decodes_to_a_valid_network(data):
    space = make_space(max_depth=2, max_nodes=300, max_complexity=20000)
    bits = tuple(data.draw(st.lists(st.integers(0, 1), min_size=space.length,
                                    max_size=space.length)))
    repaired = space.repair(bits)
    assert space.is_valid(repaired)
    arch = space.decode(bits)
    assert 1 <= len(arch.stages) <= 2
    assert arch.total_nodes <= 300
    assert space.complexity_of(arch) <= 20000
    for stage in arch.stages:
        assert all(i < j for i, j in stage.edges)
        assert stage.sources() and stage.sinks()
    assert space.repair(repaired) == repaired  # repair is idempotent


def test_valid_bits_are_not_changed_by_repair():
    space = make_space()
    rng = np.random.default_rng(0)
    for _ in range(50):
        bits = tuple(int(b) for b in rng.integers(0, 2, space.length))
        if space.is_valid(bits):
            assert space.repair(bits) == bits


def test_wrong_length_or_values_are_refused():
    space = make_space()
    with pytest.raises(InvalidGenomeError):
        space.decode((0, 1))
    with pytest.raises(InvalidGenomeError):
        space.decode((2,) * space.length)


def test_isolated_nodes_dropped_and_equivalent_dags_share_a_key():
    # a chain of two nodes, written three ways in a 3-node stage
    variants = [((0, 1),), ((1, 2),), ((0, 2),)]
    canon = {canonical_stage(3, v) for v in variants}
    assert canon == {(2, ((0, 1),))}
    assert canonical_stage(4, ()) == (1, ())
    # isomorphic diamonds with different labels
    assert canonical_stage(4, ((0, 1), (0, 2), (1, 3), (2, 3))) == \
        canonical_stage(4, ((0, 2), (0, 1), (2, 3), (1, 3)))


def test_key_ignores_inactive_stages_and_search_only_genes():
    space = make_space()
    rng = np.random.default_rng(1)
    bits = list(space.base_model(tuple(int(b) for b in rng.integers(0, 2, space.length))))
    key = space.key(bits)
    # edges and width of the inactive stage 2 do not matter
    for i in range(space.edge_slices[2].start, space.edge_slices[2].stop):
        other = list(bits)
        other[i] ^= 1
        assert space.key(other) == key
    # the individual's own mutation rate does not change the network
    sl = space.hyper_slices["mutation_rate"]
    other = list(bits)
    other[sl.start] ^= 1
    assert space.key(other) == key
    # the learning rate does
    sl = space.hyper_slices["learning_rate"]
    other = list(bits)
    other[sl.start] ^= 1
    assert space.key(other) != key


def test_hyper_parameters_cover_table_one_ranges():
    space = make_space()
    lo = space.hyper([0] * space.length)
    hi_bits = [0] * space.length
    for name, sl in space.hyper_slices.items():
        hi_bits[sl] = int_to_gray(2 ** (sl.stop - sl.start) - 1, sl.stop - sl.start)
    hi = space.hyper(hi_bits)
    assert lo["learning_rate"] == pytest.approx(1e-4) and hi["learning_rate"] == pytest.approx(1.0)
    assert lo["momentum"] == 0.0 and hi["momentum"] == pytest.approx(0.9)
    assert lo["mutation_rate"] == 0.0 and hi["mutation_rate"] == pytest.approx(1.0)
    assert lo["crossover_rate"] == pytest.approx(0.001) and hi["crossover_rate"] == pytest.approx(1.0)


def test_edge_order_matches_genetic_cnn():
    assert stage_edge_pairs(4) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def test_smallest_network_must_fit_the_limits():
    with pytest.raises(ConfigError):
        make_space(max_nodes=1)


def test_bits_string_round_trip():
    bits = (0, 1, 1, 0, 1)
    assert str_to_bits(bits_to_str(bits)) == bits


def test_exhaustive_small_stage_canonical_forms_are_topological():
    pairs = stage_edge_pairs(4)
    for mask in itertools.product((0, 1), repeat=len(pairs)):
        edges = tuple(p for p, m in zip(pairs, mask) if m)
        n, canon = canonical_stage(4, edges)
        assert all(i < j < n for i, j in canon)
