"""Growth limits, layer-wise credit and champions, checked against brute-force recounts."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnas.competition import scoreboard as competition
from gnas.config import SpaceConfig
from gnas.records import Operator
from gnas.search.step import Generation, StepDecision, apply_decision, replace_worst
from gnas.search.operators import Offspring, vary
from gnas.records import EvalResult, StoredEvaluation
from gnas.genome.space import SearchSpace, bits_to_str, str_to_bits
from gnas.runs.store import EvaluationStore

# (space config, input shape, family): the default layout, both complexity measures,
# a conv space, and limits that stage 0 alone, at its smallest width, can still break
# through its edges (repair then has to switch stage-0 edges off).
SPACES = {
    "default": (SpaceConfig(), (8, 8, 1), "dense"),
    "params": (SpaceConfig(max_depth=2, max_complexity=30000), (8, 8, 1), "dense"),
    "flops": (SpaceConfig(stage_nodes=(3, 4, 4, 4), max_depth=4, complexity="flops",
                          max_complexity=60000), (8, 8, 1), "dense"),
    "conv": (SpaceConfig(stage_nodes=(3, 4, 4), max_nodes=400, max_complexity=20000),
             (8, 8, 1), "conv"),
    "tight-nodes": (SpaceConfig(max_nodes=64), (8, 8, 1), "dense"),
    "tight-params": (SpaceConfig(max_complexity=3000), (8, 8, 1), "dense"),
}


def make_space(name: str) -> SearchSpace:
    cfg, shape, family = SPACES[name]
    return SearchSpace(cfg, shape, 10, family=family)


def within_limits(space: SearchSpace, bits) -> bool:
    arch = space._decode_unchecked(tuple(bits))
    cfg = space.cfg
    return (len(arch.stages) <= cfg.max_depth and arch.total_nodes <= cfg.max_nodes
            and (not cfg.max_complexity or space.complexity_of(arch) <= cfg.max_complexity))


# --------------------------------------------------------------------- repair
@pytest.mark.parametrize("name", list(SPACES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_repair_keeps_every_bit_string_within_the_limits(name, data):
    space = make_space(name)
    bits = tuple(data.draw(st.lists(st.integers(0, 1), min_size=space.length, max_size=space.length)))
    repaired = space.repair(bits)
    assert within_limits(space, repaired)
    assert space.repair(repaired) == repaired
    # repair only switches things off or narrows stage 0: never a new stage
    assert set(space.active_stages(repaired)) <= set(space.active_stages(bits))


@pytest.mark.parametrize("name", list(SPACES))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_every_child_of_a_generation_is_within_the_limits(name, seed):
    space = make_space(name)
    rng = np.random.default_rng(seed)
    population = [tuple(int(b) for b in rng.integers(0, 2, space.length)) for _ in range(8)]
    population = [space.repair(b) for b in population]
    fitness = list(rng.random(8))
    offspring = vary(population, fitness, elite=1, tournsize=3, rates=lambda b: (1.0, 1.0),
                     indpb=0.2, repair=space.repair, rng=rng,
                     crossover=lambda a, b, r: competition.cx_stagewise_or_one_point(
                         a, b, r, segments=[space.stage_slices(s) for s in range(len(space.stage_nodes))]))
    assert len(offspring) == 8  # repaired, never dropped
    assert all(within_limits(space, o.bits) for o in offspring)


def test_base_models_have_one_active_stage():
    space = make_space("default")
    rng = np.random.default_rng(0)
    for _ in range(20):
        bits = space.base_model(tuple(int(b) for b in rng.integers(0, 2, space.length)))
        assert space.active_stages(bits) == [0]
        assert within_limits(space, bits)


# ------------------------------------------------------------ a real store
def random_genomes(space: SearchSpace, n: int, seed: int) -> list[tuple[int, ...]]:
    """Repaired random genomes; every other one a base model, so "off" variants compete too."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bits = space.repair(tuple(int(b) for b in rng.integers(0, 2, space.length)))
        out.append(space.base_model(bits) if i % 2 else bits)
    return out


def fill_store(store: EvaluationStore, space: SearchSpace, genomes, seed: int = 0) -> None:
    """One row per network (kind search or champion), plus rows the competition ignores."""
    rng = np.random.default_rng(seed)
    seen = set()
    for i, bits in enumerate(genomes):
        key = space.key(bits)
        if key in seen:
            continue
        seen.add(key)
        kind = "champion" if i % 5 == 4 else "search"
        ok = i % 7 != 3
        result = EvalResult(key=key, genome=bits_to_str(bits), status="ok" if ok else "failed",
                            val_error=float(rng.random()), params=1000 + i, kind=kind,
                            generation=i // 4)
        store.add(result, float(rng.random()) if ok else 2.15)
    pruned = EvalResult(key=space.key(genomes[0]) + ":prune", genome=bits_to_str(genomes[0]),
                        status="ok", val_error=0.0, kind="prune", generation=0)
    store.add(pruned, -5.0)  # would top every layer if it were credited


def typed(rows) -> list[StoredEvaluation]:
    """The store's rows as the records the competition reads."""
    return [StoredEvaluation.from_row(r) for r in rows]


def recount(space: SearchSpace, rows) -> dict[tuple[int, str], tuple[float, int]]:
    """Brute force: decode every credited row, group by (layer, decoded stage)."""
    groups: dict[tuple[int, str], list[float]] = defaultdict(list)
    for row in rows:
        if row["kind"] not in ("search", "champion"):
            continue
        arch = space.decode(str_to_bits(row["genome"]))
        stages = {s.index: s for s in arch.stages}
        for layer in range(len(space.stage_nodes)):
            s = stages.get(layer)
            name = "off" if s is None else \
                f"w{s.width} n{s.nodes} [{' '.join(f'{i}>{j}' for i, j in s.edges) or 'single'}]"
            groups[(layer, name)].append(row["fitness"])
    return {k: (float(np.mean(v)), len(v)) for k, v in groups.items()}


@pytest.fixture
def filled(tmp_path):
    space = make_space("params")
    store = EvaluationStore(tmp_path / "evaluations.db")
    fill_store(store, space, random_genomes(space, 60, seed=4))
    yield space, store
    store.close()


def test_scoreboard_credit_equals_a_recount_of_the_evaluation_rows(filled):
    space, store = filled
    rows = store.rows()
    board = competition.scoreboard(space, competition.credited(typed(rows), generation=10**6), 0)
    expected = recount(space, rows)
    assert board["credited"] == sum(1 for r in rows if r["kind"] != "prune")
    seen = {}
    for layer in board["layers"]:
        assert layer["n_variants"] == sum(1 for (s, _) in expected if s == layer["stage"])
        assert sum(v["count"] for v in layer["variants"]) <= board["credited"]
        for v in layer["variants"]:
            seen[(layer["stage"], v["variant"])] = (v["mean"], v["count"])
        means = [v["mean"] for v in layer["variants"]]
        assert means == sorted(means)  # ranked, best first
    for key, (mean, count) in seen.items():
        assert expected[key][1] == count
        assert math.isclose(expected[key][0], mean, rel_tol=1e-12)
    layer0 = [k for k in expected if k[0] == 0]
    assert len(seen) >= min(len(layer0), competition.STORED_VARIANTS)


def test_credit_follows_generations_and_current_keys_only(filled):
    space, store = filled
    rows = store.rows()
    early = competition.credited(typed(rows), generation=3)
    assert {e.result.generation for e in early} <= {0, 1, 2}
    late_key = max((r for r in rows if r["kind"] == "search"), key=lambda r: r["id"])["genome_key"]
    with_current = competition.credited(typed(rows), generation=3, current_keys=[late_key])
    assert {e.key for e in with_current} == {e.key for e in early} | {late_key}
    # order of the rows does not change the credit (resume-safety)
    shuffled = list(reversed(rows))
    assert competition.scoreboard(space, competition.credited(typed(shuffled), 10**6), 0) == \
        competition.scoreboard(space, competition.credited(typed(rows), 10**6), 0)


def test_segments_rebuild_the_variant_they_were_recorded_for(filled):
    space, store = filled
    board = competition.scoreboard(space, competition.credited(store.evaluations(), 10**6), 0)
    host = space.base_model((0,) * space.length)
    for layer in board["layers"]:
        for v in layer["variants"]:
            bits = competition.with_segment(space, host, layer["stage"], v["segment"])
            if v["active"] and layer["stage"] > 0:
                assert layer["stage"] in space.active_stages(bits)
            if space.violations(bits):
                continue
            assert competition.stage_variants(space, bits)[layer["stage"]].name == v["variant"]


# ------------------------------------------------------------------ champions
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_champions_are_built_only_from_recorded_best_variants(tmp_path_factory, seed):
    space = make_space("params")
    store = EvaluationStore(tmp_path_factory.mktemp("store") / "evaluations.db")
    try:
        fill_store(store, space, random_genomes(space, 24, seed=seed), seed=seed)
        board = competition.scoreboard(space, competition.credited(store.evaluations(), 10**6), 0)
    finally:
        store.close()
    best = [v["variant"] for v in competition.best_variants(board)]
    host = random_genomes(space, 1, seed=seed + 1)[0]
    champion = competition.build_champion(space, host, board)
    assert within_limits(space, champion)
    got = [v.name for v in competition.stage_variants(space, champion)]
    composed = host
    for stage, v in enumerate(competition.best_variants(board)):
        composed = competition.with_segment(space, composed, stage, v["segment"])
    if not space.violations(composed):
        assert got == best
    assert got[0] == best[0]
    for layer in range(1, len(best)):
        # a winner is left out only when repair had to switch that layer off
        assert got[layer] in (best[layer], "off")
    assert champion[space.hyper_slices["learning_rate"]] == host[space.hyper_slices["learning_rate"]]


def test_hosts_are_the_best_distinct_networks():
    assert competition.host_indices([0.5, 0.1, 0.1, 0.3], ["a", "b", "b", "c"], 2) == [1, 3]


def test_champions_replace_the_worst_and_never_an_elite():
    space = make_space("default")
    pop = random_genomes(space, 4, seed=1)
    gen = Generation(3, list(pop), [0.9, 0.2, 0.5, 0.95], ["a", "b", "c", "d"],
                     [Offspring(pop[0], pop[0], Operator.ELITE)] +
                     [Offspring(b, b, Operator.MUTATION) for b in pop[1:]])
    protected = {i for i, o in enumerate(gen.offspring) if o.operator == Operator.ELITE} | {1}
    replacements, accepted = replace_worst(gen.fitness, gen.keys, protected,
                                           [(pop[1], "z", 0.3), (pop[2], "y", 0.99)],
                                           operator=Operator.CHAMPION, parents=[pop[1], pop[2]])
    assert accepted == [True, False] and [r.slot for r in replacements] == [3]
    apply_decision(gen, StepDecision(tuple(replacements)))
    assert gen.keys == ["a", "b", "c", "z"] and gen.fitness[3] == 0.3
    assert gen.offspring[3].operator == Operator.CHAMPION
    assert replace_worst([0.1, 0.2], ["a", "b"], {0, 1}, [(pop[0], "z", 0.0)],
                         operator=Operator.CHAMPION) == ([], [False])


# ------------------------------------------------------------------ crossover
def test_mixed_crossover_swaps_whole_stages_or_one_tail_and_is_seeded():
    space = make_space("default")
    segments = [space.stage_slices(s) for s in range(len(space.stage_nodes))]
    a, b = (0,) * space.length, (1,) * space.length
    kinds = set()
    for seed in range(40):
        x, y = competition.cx_stagewise_or_one_point(a, b, np.random.default_rng(seed), segments=segments)
        again = competition.cx_stagewise_or_one_point(a, b, np.random.default_rng(seed), segments=segments)
        assert (x, y) == again
        assert tuple(1 - v for v in x) == y
        stage_genes = {i for sl in (s for seg in segments for s in seg) for i in range(sl.start, sl.stop)}
        if all(x[i] == 0 for i in range(space.length) if i not in stage_genes):
            for seg in segments:  # stage-wise: each stage segment all from one parent
                assert len({x[i] for sl in seg for i in range(sl.start, sl.stop)}) == 1
            kinds.add("stage")
        else:
            cut = x.index(1)
            assert x == a[:cut] + b[cut:]
            kinds.add("one-point")
    assert kinds == {"stage", "one-point"}
