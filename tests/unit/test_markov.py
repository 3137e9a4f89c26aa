"""Tests of gnas.markov.chain against brute force, hand computations and known results."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gnas.markov import chain as markov
from gnas.errors import GnasError


def binomial_pmf(l: int, p: float) -> list[float]:
    """Independent reference: Binomial(l, p) pmf with math.comb and Python floats."""
    return [math.comb(l, j) * p**j * (1 - p) ** (l - j) for j in range(l + 1)]


def random_generation(seed: int, n: int = 12, l: int = 7):
    """A population, its fitness and a lineage (mutated copies + crossover children)."""
    rng = np.random.default_rng(seed)
    pop = rng.integers(0, 2, size=(n, l), dtype=np.int8)
    parents = pop[rng.integers(0, n, size=n)]
    children = parents.copy()
    children ^= (rng.random((n, l)) < 0.2).astype(np.int8)
    fitness = rng.normal(0.5, 0.3, size=n)
    return pop, fitness, parents, children


# ----------------------------------------------------------------- empirical ---
@pytest.mark.parametrize("seed", range(5))
def test_empirical_counts_equal_brute_force_recount(seed):
    _, _, parents, children = random_generation(seed, n=40, l=6)
    l = parents.shape[1]
    expected = [[0] * (l + 1) for _ in range(l + 1)]
    for prow, crow in zip(parents.tolist(), children.tolist()):
        expected[sum(prow)][sum(crow)] += 1
    assert markov.empirical_counts(parents, children).tolist() == expected


def test_empirical_rows_sum_to_one_and_unobserved_rows_are_nan():
    parents = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=np.int8)  # states 0, 0, 2
    children = np.array([[0, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=np.int8)  # states 1, 0, 3
    empirical, observed = markov.normalise_rows(markov.empirical_counts(parents, children))
    assert observed.tolist() == [True, False, True, False]
    np.testing.assert_allclose(empirical[observed].sum(axis=1), 1.0)
    np.testing.assert_array_equal(empirical[0], [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(empirical[2], [0.0, 0.0, 0.0, 1.0])
    assert np.isnan(empirical[~observed]).all()


def test_non_binary_or_mismatched_lineage_is_rejected():
    with pytest.raises(GnasError):
        markov.empirical_counts(np.array([[0, 2]]), np.array([[0, 1]]))
    with pytest.raises(GnasError):
        markov.empirical_counts(np.zeros((2, 3)), np.zeros((2, 4)))


# --------------------------------------------------------------- theoretical ---
@pytest.mark.parametrize("l", [1, 2, 5, 10])
def test_equal_fitness_rows_are_binomial_i_over_l(l):
    P = markov.theoretical_matrix(l, 0.7, 0.7)
    for i in range(l + 1):
        np.testing.assert_allclose(P[i], binomial_pmf(l, i / l), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("l,f1,f0", [(1, 2.0, 1.0), (4, 1.0, 3.0), (9, 1.3, 1.0), (31, 5.0, 1e-3)])
def test_theoretical_rows_sum_to_one_with_absorbing_ends(l, f1, f0):
    P = markov.theoretical_matrix(l, f1, f0)
    assert P.shape == (l + 1, l + 1) and (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert P[0, 0] == 1.0 and P[l, l] == 1.0


def test_tiny_chain_l2_matches_hand_computation():
    # l = 2, f1 = 2, f0 = 1.
    # i = 0: p1 = 0 (absorbing)            -> row [1, 0, 0]
    # i = 1: p1 = 1*2 / (1*2 + 1*1) = 2/3  -> row [C(2,0)(1/3)^2, C(2,1)(2/3)(1/3), C(2,2)(2/3)^2]
    #                                        = [1/9, 4/9, 4/9]
    # i = 2: p1 = 1 (absorbing)            -> row [0, 0, 1]
    expected = np.array([[1, 0, 0], [1 / 9, 4 / 9, 4 / 9], [0, 0, 1]])
    np.testing.assert_allclose(markov.theoretical_matrix(2, 2.0, 1.0), expected, rtol=1e-12)
    # Derived by hand: from state 1, stay with prob 4/9 each step, so
    # t = 1 / (1 - 4/9) = 9/5 and fixation = (4/9) / (5/9) = 4/5.
    P = markov.theoretical_matrix(2, 2.0, 1.0)
    np.testing.assert_allclose(markov.absorption_times(P), [0, 9 / 5, 0])
    np.testing.assert_allclose(markov.fixation_probabilities(P), [0, 4 / 5, 1])


@pytest.mark.parametrize("l", [2, 5, 12])
def test_pure_drift_fixation_probability_is_i_over_l(l):
    fix = markov.fixation_probabilities(markov.theoretical_matrix(l, 1.0, 1.0))
    np.testing.assert_allclose(fix, np.arange(l + 1) / l, atol=1e-10)


def test_selection_for_ones_raises_fixation_above_drift():
    l = 8
    fix = markov.fixation_probabilities(markov.theoretical_matrix(l, 1.5, 1.0))
    assert (fix[1:l] > np.arange(1, l) / l).all()
    assert np.all(np.diff(fix) > 0)


def test_analytic_absorption_times_agree_with_monte_carlo():
    l = 6
    P = markov.theoretical_matrix(l, 1.3, 1.0)
    t = markov.absorption_times(P)
    rng = np.random.default_rng(20240611)
    for start in (1, 3, 5):
        sim = markov.simulate_absorption_times(P, start, 4000, rng, max_steps=10_000)
        assert not np.isnan(sim).any()
        assert abs(sim.mean() - t[start]) / t[start] < 0.05, (start, sim.mean(), t[start])
    assert (markov.simulate_absorption_times(P, 0, 10, rng, 5) == 0).all()


def test_censored_monte_carlo_runs_are_nan():
    P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # state 1 never leaves
    assert np.isnan(markov.simulate_absorption_times(P, 1, 5, np.random.default_rng(0), 20)).all()


def test_quasi_stationary_is_a_left_eigenvector_distribution():
    l = 7
    P = markov.theoretical_matrix(l, 1.2, 1.0)
    q = markov.quasi_stationary(P)
    assert q.shape == (l + 1,) and q[0] == 0 and q[l] == 0
    assert (q >= 0).all() and math.isclose(q.sum(), 1.0, rel_tol=1e-12)
    Q = P[1:l, 1:l]
    lam = (q[1:l] @ Q).sum()  # eigenvalue, since q sums to 1
    np.testing.assert_allclose(q[1:l] @ Q, lam * q[1:l], atol=1e-12)
    assert lam == pytest.approx(max(abs(np.linalg.eigvals(Q))))


def test_l1_has_no_transient_states():
    P = markov.theoretical_matrix(1, 2.0, 1.0)
    np.testing.assert_array_equal(P, np.eye(2))
    np.testing.assert_array_equal(markov.absorption_times(P), [0, 0])
    np.testing.assert_array_equal(markov.fixation_probabilities(P), [0, 1])
    assert np.isnan(markov.quasi_stationary(P)).all()


def test_singular_transient_block_falls_back_without_crashing():
    P = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    assert np.isfinite(markov.absorption_times(P)).all()


# ------------------------------------------------------------------- fitness ---
def test_positive_fitness_is_monotone_positive_and_zeroes_failures():
    w = markov.positive_fitness([-1.0, 0.0, 0.5, 1e9, np.inf, np.nan])
    assert (w > 0).all() and (np.diff(w[:4]) < 0).all()
    np.testing.assert_allclose(w[:3], np.exp([1.0, 0.0, -0.5]))
    assert (w[3:] == markov.FITNESS_FLOOR).all()


def test_gene_survival_hand_example():
    # 3 individuals, 3 genes; F chosen so positive fitness w = exp(-F) = 2, 1, 1.
    bits = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1]], dtype=np.int8)
    F = -np.log([2.0, 1.0, 1.0])
    # gene 0: carriers {w=2, w=1}: n1=2, f1=1.5; non-carrier {1}: n0=1, f0=1 -> 3 / (3 + 1) = 0.75
    # gene 1: no carriers -> 0
    # gene 2: carriers {2, 1}: same as gene 0 -> 0.75
    np.testing.assert_allclose(markov.gene_survival(bits, F), [0.75, 0.0, 0.75])
    assert markov.gene_survival(np.ones((2, 2), dtype=np.int8), [0.1, 0.2]).tolist() == [1.0, 1.0]


def test_allele_fitness_averages_per_gene_means():
    bits = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1]], dtype=np.int8)
    F = -np.log([2.0, 1.0, 1.0])
    # f1_g: gene0 1.5, gene1 undefined, gene2 1.5 -> f1 = 1.5
    # f0_g: gene0 1,   gene1 4/3,     gene2 1   -> f0 = (1 + 4/3 + 1) / 3 = 10/9
    f1, f0 = markov.allele_fitness(bits, F)
    assert f1 == pytest.approx(1.5) and f0 == pytest.approx(10 / 9)
    # No zeros anywhere -> no evidence against ones -> drift (f0 falls back to f1).
    f1, f0 = markov.allele_fitness(np.ones((3, 4), dtype=np.int8), [0.0, 1.0, 2.0])
    assert f1 == f0


def test_state_entropy_and_predicted_absorption():
    bits = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.int8)  # states 0, 1, 1, 2
    assert markov.state_entropy(bits) == pytest.approx(1.5)  # H(1/4, 1/2, 1/4)
    assert markov.state_entropy(np.zeros((5, 3), dtype=np.int8)) == 0.0
    t = np.array([0.0, 9 / 5, 0.0])
    assert markov.predicted_generations_to_absorption(bits, t) == pytest.approx(0.9)


# --------------------------------------------------------------- convergence ---
@pytest.mark.parametrize("curve,expected", [
    ([1.0, 0.5, 0.5, 0.5, 0.5], 1),                 # last improvement at g=1, 3 flat after
    ([1.0, 0.5, 0.5, 0.5], None),                   # only 2 flat generations: not yet
    ([1.0, 0.5, 0.5, 0.5, 0.5, 0.4999], 1),         # a step below tol is no improvement
    ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], None),         # keeps improving
    ([0.5, 0.5, 0.5, 0.5], 0),                      # flat from the start
    ([1.0, 0.9999, 0.9998, 0.9997], 0),             # relative steps of 1e-4 < tol count as stagnant
    ([1.0, 0.9999, 0.9998, 0.9997, 0.5], None),     # ... but a real step after them restarts the clock
    ([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5], 4),  # an early plateau is not convergence
    ([0.7], None),                                  # nothing after generation 0 yet
    ([1.0, 0.5, 0.7, 0.6, 0.5, 0.5], 1),            # worse generations are not progress (running best)
    ([float("nan"), float("inf"), 2.0, 1.0, 1.0, 1.0, 1.0], 3),  # failed generations are +inf
    ([], None),
])
def test_observed_generations_to_convergence(curve, expected):
    assert markov.observed_generations_to_convergence(curve) == expected


def test_convergence_tol_and_patience():
    curve = [1.0, 0.99, 0.98, 0.97, 0.96]  # relative steps ~1e-2
    assert markov.observed_generations_to_convergence(curve, tol=0.02, patience=2) == 0
    assert markov.observed_generations_to_convergence(curve, tol=1e-3, patience=1) is None
    with pytest.raises(ValueError):
        markov.observed_generations_to_convergence(curve, patience=0)


# ------------------------------------------------------------------- storage ---
def save_random(markov_dir: Path, g: int, seed: int) -> Path:
    pop, fitness, parents, children = random_generation(seed)
    path = markov.generation_path(markov_dir, g)
    markov.save_generation(path, generation=g, parent_bits=parents, child_bits=children,
                           population_bits=pop, fitness=fitness)
    return path


def test_generation_path_naming(tmp_path):
    assert markov.generation_path(tmp_path / "markov", 7) == tmp_path / "markov" / "gen_0007.npz"


def test_save_load_round_trip(tmp_path):
    pop, fitness, parents, children = random_generation(3)
    path = save_random(tmp_path / "markov", 3, seed=3)
    assert path.exists() and not Path(str(path) + ".tmp").exists()
    rec = markov.load_generation(path)
    assert set(rec) == set(markov.RECORD_KEYS)
    assert all(v.dtype != object for v in rec.values())
    assert int(rec["generation"]) == 3 and int(rec["l"]) == pop.shape[1]
    np.testing.assert_array_equal(rec["population_bits"], pop)
    np.testing.assert_array_equal(rec["parent_bits"], parents)
    np.testing.assert_array_equal(rec["child_bits"], children)
    np.testing.assert_array_equal(rec["fitness"], fitness)
    np.testing.assert_array_equal(rec["counts"], markov.empirical_counts(parents, children))
    f1, f0 = markov.allele_fitness(pop, fitness)
    np.testing.assert_allclose(rec["theoretical"], markov.theoretical_matrix(pop.shape[1], f1, f0))
    np.testing.assert_allclose(rec["gene_survival"], markov.gene_survival(pop, fitness))
    assert rec["observed"].dtype == bool


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_corrupt_file_raises_gnas_error(tmp_path, content):
    path = tmp_path / "gen_0000.npz"
    path.write_bytes(content)
    with pytest.raises(GnasError) as info:
        markov.load_generation(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_incomplete_record_raise_gnas_error(tmp_path):
    with pytest.raises(GnasError):
        markov.load_generation(tmp_path / "gen_0001.npz")
    np.savez_compressed(tmp_path / "gen_0002.npz", generation=np.asarray(2))
    with pytest.raises(GnasError, match="lacks"):
        markov.load_generation(tmp_path / "gen_0002.npz")
    with pytest.raises(GnasError):
        markov.load_run(tmp_path / "nope")


def test_load_run_sorted_and_summarise_is_json(tmp_path):
    d = tmp_path / "markov"
    for g in (2, 0, 1, 10):
        save_random(d, g, seed=g)
    (d / "gen_0011.npz.tmp").write_bytes(b"partial")  # an interrupted write is ignored
    assert [int(r["generation"]) for r in markov.load_run(d)] == [0, 1, 2, 10]
    summary = markov.summarise(d, [1.0, 0.8, 0.8, 0.8, 0.8])
    json.loads(json.dumps(summary, allow_nan=False))
    assert set(summary) == {"l", "generations", "observed_generations_to_convergence"}
    assert summary["l"] == 7 and summary["observed_generations_to_convergence"] == 1
    assert [g["generation"] for g in summary["generations"]] == [0, 1, 2, 10]
    for entry in summary["generations"]:
        assert set(entry) == {"generation", "predicted_generations_to_absorption", "rows_observed",
                              "state_entropy"}
        assert type(entry["generation"]) is int and type(entry["rows_observed"]) is int
        assert type(entry["predicted_generations_to_absorption"]) is float
        assert type(entry["state_entropy"]) is float


def test_plot_matrices_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rec = markov.load_generation(save_random(tmp_path, 4, seed=4))
    assert not rec["observed"].all()  # some rows are hatched
    from gnas.report import analysis

    out = analysis.plot_matrices(rec, tmp_path / "plots" / "gen_0004.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_operator_labels_and_exclusions_are_stored(tmp_path):
    pop, fitness, parents, children = random_generation(5)
    ops = ["crossover", "mutation"] * (len(parents) // 2)
    path = markov.generation_path(tmp_path, 1)
    markov.save_generation(path, generation=1, parent_bits=parents, child_bits=children,
                           population_bits=pop, fitness=fitness, operators=ops,
                           excluded=["elite", "champion"])
    rec = markov.load_generation(path)
    assert rec["operators"].tolist() == ops and rec["operators"].dtype.kind == "U"
    assert rec["excluded"].tolist() == ["elite", "champion"] and rec["excluded"].dtype.kind == "U"
    with pytest.raises(GnasError, match="operator labels"):
        markov.compute_record(generation=1, parent_bits=parents, child_bits=children,
                              population_bits=pop, fitness=fitness, operators=ops[:-1])


def test_generation_zero_record_has_empty_lineage(tmp_path):
    pop, fitness, _, _ = random_generation(6)
    empty = np.zeros((0, pop.shape[1]), dtype=np.int8)
    path = markov.generation_path(tmp_path, 0)
    markov.save_generation(path, generation=0, parent_bits=empty, child_bits=empty,
                           population_bits=pop, fitness=fitness, operators=[])
    rec = markov.load_generation(path)
    assert rec["counts"].sum() == 0 and not rec["observed"].any() and np.isnan(rec["empirical"]).all()
    assert rec["parent_bits"].shape == (0, pop.shape[1]) and rec["operators"].shape == (0,)
    np.testing.assert_allclose(rec["theoretical"].sum(axis=1), 1.0)
    assert math.isfinite(float(rec["predicted_generations_to_absorption"]))


def test_best_fitness_curve_orders_dedupes_and_maps_missing_to_inf():
    book = [{"generation": 1, "best": 0.5}, {"generation": 0, "best": 0.9},
            {"generation": 1, "best": 0.4}, {"generation": 2, "best": None},
            {"generation": 3, "best": float("nan")}]
    assert markov.best_fitness_curve(book) == [0.9, 0.4, math.inf, math.inf]


def test_recorder_lineage_excludes_elites_and_champions_and_keeps_connection_genes():
    from gnas.config import SpaceConfig
    from gnas.markov.recorder import lineage_arrays
    from gnas.search.operators import Offspring, vary
    from gnas.genome.space import SearchSpace

    space = SearchSpace(SpaceConfig(), (64,), 10)
    rng = np.random.default_rng(7)
    population = [space.random_bits(rng) for _ in range(9)]
    fitness = rng.random(9).tolist()
    offspring = vary(population, fitness, elite=2, tournsize=3, rates=lambda bits: (0.8, 0.8),
                     indpb=0.1, repair=space.repair, rng=rng)
    offspring[-1] = Offspring(space.random_bits(rng), offspring[3].bits, "champion")
    parents, children, ops, excluded = lineage_arrays(offspring, space)
    moves = [o for o in offspring if o.operator not in ("elite", "champion")]
    assert excluded == ["elite", "elite", "champion"] and len(ops) == len(moves) == 6
    assert parents.shape == children.shape == (6, space.l)
    assert parents.tolist() == [list(o.parent[:space.l]) for o in moves]
    assert children.tolist() == [list(o.bits[:space.l]) for o in moves]
    assert set(ops) <= {"copy", "crossover", "mutation", "crossover+mutation"}
    empty = lineage_arrays([], space)
    assert empty[0].shape == (0, space.l) and empty[3] == []
