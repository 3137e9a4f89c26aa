"""The novelty rule on the real operators and search space, with a fast deterministic fitness."""
from __future__ import annotations

import hashlib

import numpy as np

from gnas.config import SpaceConfig
from gnas.genome.space import SearchSpace
from gnas.records import Operator
from gnas.search.novelty import (distinct_population, expressed_genes, expressed_mutation, flip,
                                 make_novel, mut_expressed, remutation)
from gnas.search.operators import Offspring, mut_flip_bits, vary


def make_space() -> SearchSpace:
    return SearchSpace(SpaceConfig(), (64,), 10)


def surrogate(space: SearchSpace, bits) -> float:
    """Deterministic per network (like a cached training): more connections are better."""
    key = space.key(bits)
    noise = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 16 ** 6
    return -sum(space.connection_genes(space.repair(bits))) / space.l + 0.05 * noise


def evolve(space: SearchSpace, *, generations: int, novelty: bool, seed: int = 0):
    """The loop's variation over many generations; returns per-generation (keys, new fraction)."""
    rng = np.random.default_rng(seed)
    population = [space.base_model(space.random_bits(rng)) for _ in range(10)]
    key_of = space.key
    if novelty:
        def mutate(bits, rate, r):
            return mut_expressed(bits, r, rate=rate, indpb=1 / space.length, key_of=key_of,
                                 repair=space.repair)
        population = distinct_population(population, rng, mutate=lambda b, r: mutate(b, 0.5, r),
                                         key_of=key_of, tries=20)
    else:
        mutate = None
    rates = lambda b: (space.hyper(b)["mutation_rate"], space.hyper(b)["crossover_rate"])
    evaluated = {key_of(b) for b in population}
    history = []
    for _ in range(generations):
        fitness = [surrogate(space, b) for b in population]
        offspring = vary(population, fitness, elite=1, tournsize=3, rates=rates,
                         indpb=1 / space.length, repair=space.repair, rng=rng, mutate=mutate)
        if novelty:
            offspring = make_novel(offspring, rng, mutate=lambda b, r: mutate(b, rates(b)[0], r),
                                   key_of=key_of, evaluated=evaluated, tries=20).offspring
        keys = [key_of(o.bits) for o in offspring]
        slots = [k for k, o in zip(keys, offspring) if o.operator != Operator.ELITE]
        history.append((keys, sum(k not in evaluated for k in set(slots)) / len(slots)))
        evaluated.update(keys)
        population = [o.bits for o in offspring]
    return history


def test_forced_flip_always_changes_the_network():
    space = make_space()
    rng = np.random.default_rng(1)
    for _ in range(50):
        bits = space.base_model(space.random_bits(rng))
        child = mut_expressed(bits, rng, rate=0.0, indpb=0.0, key_of=space.key, repair=space.repair)
        assert space.key(child) != space.key(bits)
        assert sum(a != b for a, b in zip(bits, child)) >= 1


def test_expressed_genes_exclude_unused_stages_and_self_adaptive_rates():
    space = make_space()
    bits = space.base_model(space.random_bits(np.random.default_rng(2)))
    expressed = set(expressed_genes(bits, space.key, space.repair))
    stage1_edges = set(range(space.edge_slices[1].start, space.edge_slices[1].stop))
    rates = set(range(space.hyper_slices["mutation_rate"].start, space.hyper_slices["crossover_rate"].stop))
    assert expressed and not expressed & stage1_edges and not expressed & rates
    assert all(space.key(space.repair(flip(bits, i))) == space.key(bits)
               for i in set(range(space.length)) - expressed)


def test_extra_flips_follow_the_individuals_rate():
    space = make_space()
    rng = np.random.default_rng(3)
    bits = space.random_bits(rng)
    flips = [sum(a != b for a, b in zip(bits, mut_expressed(bits, rng, rate=1.0, indpb=0.5,
                                                            key_of=space.key, repair=lambda b: b)))
             for _ in range(200)]
    assert 0.4 * space.length < np.mean(flips) < 0.6 * space.length + 1


def test_population_never_collapses_over_many_generations():
    space = make_space()
    history = evolve(space, generations=25, novelty=True)
    for keys, new in history:
        assert len(set(keys)) == len(keys)  # no network twice in a population
        assert new >= 0.9                   # >= 90 % of non-elite slots are new networks


def test_without_the_rule_the_same_operators_collapse():
    space = make_space()
    history = evolve(space, generations=25, novelty=False)
    assert np.mean([new for _, new in history]) < 0.6
    assert min(len(set(keys)) for keys, _ in history) < 8


def test_a_child_that_stays_a_duplicate_is_counted_as_reuse():
    same = (0, 1, 0)
    offspring = [Offspring(same, same, Operator.ELITE), Offspring(same, same, Operator.COPY)]
    novel = make_novel(offspring, np.random.default_rng(0), mutate=lambda b, r: b,
                       key_of=lambda b: "k", evaluated=set(), tries=3)
    assert novel.reused == 1 and novel.retried == 3
    moved = make_novel(offspring, np.random.default_rng(0),
                       mutate=lambda b, r: mut_flip_bits(b, 1.0, r), key_of=str, evaluated=set(), tries=3)
    assert moved.reused == 0 and moved.offspring[1].bits == (1, 0, 1)
    assert moved.offspring[1].operator == Operator.MUTATION


def test_the_shared_remutation_is_the_expressed_mutation_at_the_own_rate_then_growth():
    space = make_space()
    rates = lambda b: (space.hyper(b)["mutation_rate"], space.hyper(b)["crossover_rate"])
    mutate = expressed_mutation(indpb=1 / space.length, key_of=space.key, repair=space.repair)
    grown = []

    def grow(bits, rng):
        grown.append(bits)
        return bits[:-1] + (1 - bits[-1],)

    bits = space.random_bits(np.random.default_rng(4))
    for remutate_grows in (None, grow):
        out = remutation(mutate, rates=rates, repair=space.repair, grow=remutate_grows)(
            bits, np.random.default_rng(5))
        by_hand = mut_expressed(bits, np.random.default_rng(5), rate=rates(bits)[0], indpb=1 / space.length,
                                key_of=space.key, repair=space.repair)
        if remutate_grows is not None:
            assert grown == [by_hand]
            by_hand = space.repair(by_hand[:-1] + (1 - by_hand[-1],))
        assert out == by_hand and space.key(out) != space.key(bits)
