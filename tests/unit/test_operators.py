"""Variation operators: DEAP semantics with an explicit generator."""
from __future__ import annotations

import pickle

import numpy as np

from gnas.search.individual import Individual, MultiIndividual
from gnas.search.operators import (cx_one_point, cx_segments, mut_flip_bits, sel_best, sel_tournament,
                            vary)


def test_individual_classes_pickle_by_name():
    ind = Individual([0, 1, 1])
    ind.fitness.values = (0.5,)
    back = pickle.loads(pickle.dumps(ind))
    assert list(back) == [0, 1, 1] and back.fitness.values == (0.5,)
    assert MultiIndividual([1]).fitness.weights == (-1.0, -1.0)


def test_sel_best_is_elitism():
    assert sel_best([0.3, 0.1, 0.2, 0.1], 2) == [1, 3]


def test_tournament_prefers_better_and_is_seeded():
    fit = list(np.linspace(0, 1, 20))
    a = sel_tournament(fit, 200, 3, np.random.default_rng(0))
    b = sel_tournament(fit, 200, 3, np.random.default_rng(0))
    assert a == b
    assert np.mean([fit[i] for i in a]) < 0.4  # expected best-of-3 is 0.25


def test_one_point_crossover_swaps_tails():
    a, b = (0,) * 10, (1,) * 10
    x, y = cx_one_point(a, b, np.random.default_rng(3))
    cut = x.index(1)
    assert 1 <= cut <= 9
    assert x == a[:cut] + b[cut:] and y == b[:cut] + a[cut:]


def test_segment_crossover_exchanges_whole_segments():
    a, b = (0,) * 6, (1,) * 6
    segments = [[slice(0, 2)], [slice(2, 4), slice(4, 6)]]
    for seed in range(10):
        x, y = cx_segments(a, b, segments, np.random.default_rng(seed))
        assert x[0] == x[1] and x[2] == x[3] == x[4] == x[5]
        assert tuple(1 - v for v in x) == y


def test_mutation_rate_is_per_bit():
    bits = (0,) * 10000
    flipped = sum(mut_flip_bits(bits, 0.1, np.random.default_rng(0)))
    assert 900 < flipped < 1100
    assert mut_flip_bits(bits, 0.0, np.random.default_rng(0)) == bits


def test_vary_keeps_elite_size_and_lineage():
    rng = np.random.default_rng(5)
    pop = [tuple(int(b) for b in rng.integers(0, 2, 12)) for _ in range(7)]
    fit = [0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.7]
    out = vary(pop, fit, elite=2, tournsize=2, rates=lambda b: (1.0, 1.0), indpb=0.2,
               repair=lambda b: b, rng=np.random.default_rng(0))
    assert len(out) == 7
    assert [o.bits for o in out[:2]] == [pop[1], pop[4]]
    assert all(o.operator == "elite" for o in out[:2])
    assert all(o.parent in pop for o in out)
    assert all(o.operator != "elite" for o in out[2:])


def test_vary_with_zero_rates_copies_parents():
    pop = [(0, 0, 1), (1, 1, 0), (1, 0, 1)]
    out = vary(pop, [0.1, 0.2, 0.3], elite=1, tournsize=2, rates=lambda b: (0.0, 0.0), indpb=1.0,
               repair=lambda b: b, rng=np.random.default_rng(0))
    assert all(o.bits == o.parent for o in out)
    assert {o.operator for o in out[1:]} == {"copy"}


def test_repair_is_applied_to_children_never_dropped():
    pop = [(1, 1, 1, 1)] * 4
    out = vary(pop, [0.0] * 4, elite=0, tournsize=2, rates=lambda b: (1.0, 1.0), indpb=0.5,
               repair=lambda b: (0,) + b[1:], rng=np.random.default_rng(2))
    assert len(out) == 4 and all(o.bits[0] == 0 for o in out)


def test_grow_switches_on_the_first_inactive_stage_only():
    from gnas.search.operators import mut_grow

    bits = (1, 0, 0, 1, 1)
    stages = slice(0, 3)
    assert mut_grow(bits, np.random.default_rng(0), stage_bits=stages, rate=1.0) == (1, 1, 0, 1, 1)
    assert mut_grow((1, 1, 1, 0, 0), np.random.default_rng(0), stage_bits=stages, rate=1.0) == (1, 1, 1, 0, 0)
    assert mut_grow(bits, np.random.default_rng(0), stage_bits=stages, rate=0.0) == bits


def test_vary_applies_growth_as_part_of_mutation():
    from functools import partial

    from gnas.search.operators import mut_grow

    pop = [(0, 0, 1, 1)] * 4
    grow = partial(mut_grow, stage_bits=slice(0, 2), rate=1.0)
    out = vary(pop, [0.0] * 4, elite=0, tournsize=2, rates=lambda b: (1.0, 0.0), indpb=0.0,
               repair=lambda b: b, rng=np.random.default_rng(0), grow=grow)
    assert all(o.bits[:2] == (1, 0) and o.operator == "mutation" for o in out)
    none = vary(pop, [0.0] * 4, elite=0, tournsize=2, rates=lambda b: (0.0, 0.0), indpb=0.0,
                repair=lambda b: b, rng=np.random.default_rng(0), grow=grow)
    assert all(o.bits == pop[0] for o in none)


def test_aging_with_one_child_per_step_removes_only_the_oldest():
    """Real et al.'s regularized evolution: one child joins at the end, the oldest dies."""
    from gnas.search.strategies import aging_offspring

    population = [(0, 0, 0, i % 2, i // 2 % 2, i // 4) for i in range(6)]
    fitness = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]
    out = aging_offspring(population, fitness, sample=3, rng=np.random.default_rng(0),
                          mutate=lambda bits, rng: bits[:2] + (1,) + bits[3:], children=1)
    assert [o.bits for o in out[:5]] == population[1:]
    assert len(out) == 6 and out[-1].parent in population and out[-1].bits[2] == 1
    assert len(aging_offspring(population, fitness, sample=3, rng=np.random.default_rng(0),
                               mutate=lambda bits, rng: bits)) == 6  # the older half, as before
